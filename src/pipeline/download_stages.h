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
// re-encode; failures become failed_to_resize. With `bbox_col`, the boxes in meta[bbox_col]
// (image/blur.h) are blurred before encoding; a malformed value fails the sample (failed_to_resize:
// its image is not written unblurred).
std::unique_ptr<Stage> make_resize_stage(const ResizeParams& params, int threads, std::string verify_hash_col,
                                         std::string bbox_col = "");

}  // namespace capforge
