// The stages of `capforge download`: fetch (libcurl multi) and resize (libvips).
#pragma once

#include <memory>
#include <string>

#include "capforge/pipeline.h"
#include "fetch/http_fetcher.h"
#include "image/resize.h"

namespace capforge {

// Downloads each sample's url into image_bytes; `workers` fetchers with params.concurrency
// transfers each. Failures become failed_to_download with the reason.
std::unique_ptr<Stage> make_fetch_stage(const fetch::FetchParams& params, int workers);

// sha256 of the downloaded bytes (checked against meta[verify_hash_col] when set), then resize and
// re-encode; failures become failed_to_resize.
std::unique_ptr<Stage> make_resize_stage(const ResizeParams& params, int threads,
                                         std::string verify_hash_col);

}  // namespace capforge
