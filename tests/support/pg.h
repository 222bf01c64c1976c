// PostgreSQL for tests: the server `make pg` / scripts/pg starts (CAPFORGE_TEST_PG_URL).
#pragma once

#include <string>

namespace capforge::test {

// A fresh schema in the database at `base_url`, and a URL whose connections use it (libpq's
// options=-csearch_path), so tests running at once never see each other's tables.
std::string pg_scratch_schema_url(const std::string& base_url);

// The server's URL, or "" when CAPFORGE_TEST_PG_URL is unset.
std::string pg_url();

}  // namespace capforge::test
