// Metrics::render for the GPU workers' counters, from a DeviceStatus as the backend reports it.
#include <gtest/gtest.h>

#include <string>

#include "kiln/service/metrics.hpp"

namespace kiln::service {
namespace {

TEST(Metrics, WorkerCountersArePerDevice) {
  MetricsInputs in;
  DeviceStatus d;
  d.ordinal = 1;
  d.uuid = "GPU-1234";
  d.worker_restarts = 2;
  d.image_bytes_sent = 123456;
  in.devices = {d};
  const std::string text = Metrics().render(in);
  EXPECT_NE(text.find("# TYPE kiln_worker_image_bytes_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kiln_worker_image_bytes_total{device=\"1\",uuid=\"GPU-1234\"} 123456\n"), std::string::npos) << text;
  EXPECT_NE(text.find("kiln_worker_restarts_total{device=\"1\",uuid=\"GPU-1234\"} 2\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace kiln::service
