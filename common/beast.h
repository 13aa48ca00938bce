#pragma once
// Boost.Asio + Boost.Beast, included the one way the project uses them:
// - <utility> first: asio's awaitable.hpp (1.74) uses std::exchange without including it;
// - g++ 12 with -fsanitize reports a false -Wmaybe-uninitialized inside Beast's
//   basic_parser (boost::optional content length); it is silenced for these headers only.
#include <utility>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#pragma GCC diagnostic pop
