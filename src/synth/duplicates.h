// Duplicates planted on purpose in synthetic shards (`capforge synth --duplicates N`), so that
// curation (dedup's sha256 / pHash / embedding methods) can be measured against a known truth.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "synth/shapes.h"

namespace capforge::synth {

// exact: the original's JPEG bytes; reencode: decoded and saved again at another JPEG quality;
// resize: scaled to 75% (libvips, JPEG); flip: the scene mirrored left <-> right (a negative
// control: a near-duplicate finder working on pixels, such as pHash, should not match it).
enum class DupKind { exact, reencode, resize, flip };
const char* dup_kind_name(DupKind k);
// The d-th planted duplicate's kind: they cycle exact, reencode, resize, flip.
DupKind dup_kind(int d);

// The scene mirrored left <-> right, its truth rewritten ("on the left" becomes "on the right",
// shapes still listed left to right). Every shape is mirror-symmetric, so render(mirror(s)) is the
// horizontal flip of render(s), except a drawn word, which stays readable.
Scene mirror(const Scene& s);
// Whether a scene differs visibly from its mirror image (at least 10% of the pixels of a small
// rendering change), so that a flipped copy is a real negative control.
bool clearly_asymmetric(const Scene& s);

// Which of the samples 0..count-1 each of `n` duplicates copies: a permutation drawn from `seed`,
// taken in order (so originals differ while n <= count), except that a flip takes the next sample
// whose scene is clearly_asymmetric (when there is one). `scene_of(i)` gives sample i's scene.
std::vector<int> pick_originals(int count, int n, uint64_t seed, const std::function<Scene(int)>& scene_of);

// The duplicate's image bytes (JPEG): `original_jpeg` is render(scene, size) encoded at `quality`.
std::string make_duplicate(DupKind k, const Scene& scene, const std::string& original_jpeg, int size,
                           int quality);

}  // namespace capforge::synth
