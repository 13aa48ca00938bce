#pragma once
// Result<T>: the error channel of the data path and the sandbox. No exceptions cross Asio
// handlers or C callbacks; fallible functions return Result<T> instead.
#include <cerrno>
#include <string>
#include <string_view>
#include <tl/expected.hpp>

namespace appvirt {

struct Error {
  std::string message;  // what failed, with the call and its arguments: "mount(/a, /b)"
  int err = 0;          // errno of the failing call, 0 when there is none

  std::string str() const;
};

template <class T = void>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(std::string message, int err = 0) {
  return tl::unexpected<Error>(Error{std::move(message), err});
}

// A failed system call: fail_errno("pivot_root(" + dir + ")") uses the current errno.
inline tl::unexpected<Error> fail_errno(std::string call) { return fail(std::move(call), errno); }

// Adds context in front of an error coming up from below: "create container alice: mount(...)".
inline Error wrap(std::string_view context, Error e) {
  e.message = std::string(context) + ": " + e.message;
  return e;
}

}  // namespace appvirt
