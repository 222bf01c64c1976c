#include <gtest/gtest.h>

#include <thread>

#include "pipeline/bounded_queue.h"

namespace capforge {

TEST(BoundedQueue, FifoAndCloseDrains) {
  BoundedQueue<int> q(4);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(q.push(i));
  q.close();
  EXPECT_FALSE(q.push(9));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(q.pop(), i);
  EXPECT_EQ(q.pop(), std::nullopt);
}

TEST(BoundedQueue, PushBlocksWhenFull) {
  BoundedQueue<int> q(2);
  q.push(1);
  q.push(2);
  std::atomic<bool> pushed{false};
  std::thread t([&] {
    q.push(3);
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(pushed);
  EXPECT_EQ(q.pop(), 1);
  t.join();
  EXPECT_TRUE(pushed);
  EXPECT_EQ(q.size(), 2u);
}

TEST(BoundedQueue, ManyProducersConsumersLoseNothing) {
  BoundedQueue<int> q(8);
  std::atomic<long> sum{0};
  std::vector<std::thread> producers, consumers;
  for (int p = 0; p < 4; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < 1000; ++i) q.push(p * 1000 + i);
    });
  for (int c = 0; c < 3; ++c)
    consumers.emplace_back([&] {
      while (auto v = q.pop()) sum += *v;
    });
  for (auto& t : producers) t.join();
  q.close();
  for (auto& t : consumers) t.join();
  EXPECT_EQ(sum, 3999L * 4000 / 2);
}

}  // namespace capforge
