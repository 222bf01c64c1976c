// clip-retrieval's embedding layout, one set per output shard (docs/curate-embeddings.md):
//   OUT/img_emb/img_emb_{shard}.npy     float16 [rows, dim], L2-normalised image embeddings
//   OUT/text_emb/text_emb_{shard}.npy   float16 [rows, dim], the original caption's (zeros: none)
//   OUT/metadata/metadata_{shard}.parquet  key, url, caption (+ safety columns), same row order
// A row per sample that has an image embedding (Sample::img_emb) and is not filtered, in output
// order; samples without one (failed to read/decode/caption) are left out, as clip-retrieval does,
// and so are filtered ones (status filtered, with or without --drop-filtered). The three files are built
// under temp names and published by commit(), so a shard's set appears with its outputs or not at all, and a
// rerun of the shard replaces it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "capforge/io.h"

namespace capforge {

struct EmbeddingSetParams {
  std::string out_dir, shard;
  int dim = 0;  // the first ranker's embedding dimension (an empty shard still says it)
  bool punsafe_column = false, concept_columns = false;  // as WriterParams
};

// The three final paths of a shard's set: img_emb, text_emb, metadata.
std::vector<std::string> embedding_set_paths(const std::string& out_dir, const std::string& shard);

// A SampleWriter for OutputSink: path() is the metadata parquet. Throws std::runtime_error from
// write() when an embedding's size is not `dim`.
std::unique_ptr<SampleWriter> open_embedding_writer(const EmbeddingSetParams& params);

}  // namespace capforge
