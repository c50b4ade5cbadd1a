#pragma once
// expect_error(fn, part): fn must throw cnnvis::Error whose message contains `part`.
#include <gtest/gtest.h>

#include <string>

#include "cnnvis/error.hpp"

namespace cnnvis::testing {

template <typename Fn>
void expect_error(Fn&& fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning " << part;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

}  // namespace cnnvis::testing
