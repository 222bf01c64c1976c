#include "support/pg.h"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>

namespace capforge::test {

std::string pg_url() {
  const char* u = std::getenv("CAPFORGE_TEST_PG_URL");
  return u ? u : "";
}

std::string pg_scratch_schema_url(const std::string& base_url) {
  static std::atomic<int> n{0};
  auto ticks = std::chrono::steady_clock::now().time_since_epoch().count();
  std::string schema = "t_" + std::to_string(getpid()) + "_" + std::to_string(n++) + "_" +
                       std::to_string((unsigned long long)ticks % 1000000);
  PGconn* c = PQconnectdb(base_url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("cannot connect to " + base_url + ": " + msg);
  }
  PGresult* r = PQexec(c, ("CREATE SCHEMA " + schema).c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  std::string msg = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error("cannot create schema " + schema + ": " + msg);
  return base_url + (base_url.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
         schema;
}

}  // namespace capforge::test
