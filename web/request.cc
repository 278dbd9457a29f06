// rkt::web::request's accessors.
#include "web/request.h"

#include "ports/bytes_port.h"
#include "web/internal/http_format.h"

namespace rkt::web {

std::string_view request::path() const {
  const std::string_view t = target_;
  return t.substr(0, t.find('?'));
}

std::string_view request::query() const {
  const std::string_view t = target_;
  const std::size_t q = t.find('?');
  return q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
}

std::optional<std::string_view> request::header(std::string_view name) const {
  for (const field& f : fields_) {
    if (internal::equals_ignore_case(std::string_view(raw_).substr(f.name_at, f.name_len), name)) {
      return std::string_view(raw_).substr(f.value_at, f.value_len);
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> request::header_values(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const field& f : fields_) {
    if (internal::equals_ignore_case(std::string_view(raw_).substr(f.name_at, f.name_len), name)) {
      out.push_back(std::string_view(raw_).substr(f.value_at, f.value_len));
    }
  }
  return out;
}

std::pair<std::string_view, std::string_view> request::header_at(std::size_t i) const {
  const field& f = fields_.at(i);
  return {std::string_view(raw_).substr(f.name_at, f.name_len),
          std::string_view(raw_).substr(f.value_at, f.value_len)};
}

const input_port& request::body() const {
  if (!body_) body_.emplace(open_input_bytes(body_bytes_, "request body"));
  return *body_;
}

std::string request::read_body() const {
  if (!body_) {
    // Nothing read yet and the body is in memory: hand it over whole.
    body_.emplace(open_input_bytes("", "request body"));
    return body_bytes_;
  }
  std::string out;
  char buf[16 * 1024];
  while (or_eof<std::size_t> n = body_->read_bytes_avail(buf)) out.append(buf, *n);
  return out;
}

void request::reset() {
  method_ = "";
  target_.clear();
  raw_.clear();
  fields_.clear();
  body_.reset();
  body_bytes_.clear();
}

}  // namespace rkt::web
