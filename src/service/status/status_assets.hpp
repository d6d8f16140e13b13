// kilnd's status page (GET /): the files of src/service/status/, embedded into the binary at build
// time (cmake/embed_files.cmake), so kilnd serves its page with nothing installed beside it and
// nothing fetched from elsewhere.
//
// Thread safety: constant data.
#pragma once

#include <string_view>

namespace kiln::service::status {

std::string_view index_html() noexcept;
std::string_view app_js() noexcept;
std::string_view app_css() noexcept;

}  // namespace kiln::service::status
