#pragma once
// Runs a blocking call (PAM, NSS) on a thread pool and resumes the awaiting coroutine on its own
// executor with the result, so the I/O thread never blocks and the broker's state stays
// single-threaded.
#include <utility>  // before Boost: asio's awaitable.hpp uses std::exchange without including it

#include <boost/asio.hpp>
#include <type_traits>

namespace appvirt::broker {

template <class Fn>
auto offload(boost::asio::thread_pool& pool, Fn fn)
    -> boost::asio::awaitable<std::invoke_result_t<Fn&>> {
  namespace asio = boost::asio;
  using T = std::invoke_result_t<Fn&>;
  // A tracked executor counts as outstanding work, so the I/O loop keeps running while the pool
  // works even when nothing else is pending on it.
  auto ex = asio::prefer(co_await asio::this_coro::executor,
                         asio::execution::outstanding_work.tracked);
  auto initiate = [&pool, ex, fn = std::move(fn)](auto handler) mutable {
    asio::post(pool, [ex, fn = std::move(fn), handler = std::move(handler)]() mutable {
      T value = fn();
      asio::post(ex, [handler = std::move(handler), value = std::move(value)]() mutable {
        std::move(handler)(std::move(value));
      });
    });
  };
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(T)>(
      std::move(initiate), asio::use_awaitable);
}

}  // namespace appvirt::broker
