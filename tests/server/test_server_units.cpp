// tests/server/test_server_units.cpp: the server's building blocks without HTTP: the Prometheus text
// and the embedded web page.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "app/server/metrics.h"
#include "app/server/web_assets.h"

using namespace m2fp::app;

// ---- metrics ----------------------------------------------------------------------------------------
TEST(Metrics, HistogramIsCumulativeWithInf) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 2.0, 50.0}) h.observe(v);
  std::string out;
  h.write(out, "x_seconds", "endpoint=\"/p\"");
  EXPECT_NE(out.find("x_seconds_bucket{endpoint=\"/p\",le=\"0.1\"} 2\n"), std::string::npos) << out;  // le is <=
  EXPECT_NE(out.find("x_seconds_bucket{endpoint=\"/p\",le=\"1\"} 3\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{endpoint=\"/p\",le=\"10\"} 4\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_bucket{endpoint=\"/p\",le=\"+Inf\"} 5\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_count{endpoint=\"/p\"} 5\n"), std::string::npos) << out;
  EXPECT_NE(out.find("x_seconds_sum{endpoint=\"/p\"} 52.65\n"), std::string::npos) << out;
  EXPECT_DOUBLE_EQ(h.quantile_bound(0.5), 1.0);
  EXPECT_TRUE(std::isinf(h.quantile_bound(1.0)));
  EXPECT_THROW(Histogram({1, 1}), std::invalid_argument);
}

TEST(Metrics, PrometheusTextHasEveryFamily) {
  Metrics m;
  m.request("/predict", 200, 1.5);
  m.request("/predict", 200, 0.002);
  m.request("/predict", 429, 0.001);
  m.engine(1.4);
  m.rejected("queue_full");
  Gauges g;
  g.queue_depth = 3;
  g.queue_capacity = 8;
  g.cache_hits = 5;
  g.synthetic = true;
  g.jobs = {{"done", 2}};
  const std::string t = m.prometheus(g);
  for (const char* want :
       {"# TYPE m2fp_http_requests_total counter\n", "m2fp_http_requests_total{endpoint=\"/predict\",code=\"200\"} 2\n",
        "m2fp_http_requests_total{endpoint=\"/predict\",code=\"429\"} 1\n",
        "# TYPE m2fp_http_request_duration_seconds histogram\n",
        "m2fp_http_request_duration_seconds_count{endpoint=\"/predict\"} 3\n", "m2fp_engine_duration_seconds_count 1\n",
        "m2fp_rejected_total{reason=\"queue_full\"} 1\n", "m2fp_rejected_total{reason=\"timeout\"} 0\n",
        "m2fp_cache_hits_total 5\n", "m2fp_queue_depth 3\n", "m2fp_queue_capacity 8\n", "m2fp_jobs{state=\"done\"} 2\n",
        "m2fp_model_synthetic 1\n"})
    EXPECT_NE(t.find(want), std::string::npos) << "missing: " << want << "\n" << t;
  // Every sample line is "name{labels} value" or "name value" with a parseable number.
  size_t pos = 0;
  while (pos < t.size()) {
    const size_t eol = t.find('\n', pos);
    ASSERT_NE(eol, std::string::npos) << "text must end with a newline";
    const std::string line = t.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t sp = line.rfind(' ');
    ASSERT_NE(sp, std::string::npos) << line;
    const std::string v = line.substr(sp + 1);
    if (v != "+Inf") {
      char* end = nullptr;
      std::strtod(v.c_str(), &end);
      EXPECT_EQ(*end, '\0') << "bad value in: " << line;
    }
  }
  EXPECT_EQ(prom_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(prom_number(2), "2");
  EXPECT_EQ(prom_number(0.25), "0.25");
}

TEST(WebAssets, PageIsEmbedded) {
  const WebAsset* html = find_web_asset("index.html");
  ASSERT_NE(html, nullptr);
  const std::string text(reinterpret_cast<const char*>(html->data), html->size);
  EXPECT_NE(text.find("<script src=\"app.js\">"), std::string::npos);
  EXPECT_STREQ(html->content_type, "text/html; charset=utf-8");
  ASSERT_NE(find_web_asset("app.js"), nullptr);
  ASSERT_NE(find_web_asset("style.css"), nullptr);
  EXPECT_EQ(find_web_asset("../CMakeLists.txt"), nullptr);
  int n = 0;
  for (const WebAsset* a = web_assets(); a->name; ++a) {
    ++n;
    EXPECT_GT(a->size, 0u) << a->name;
  }
  EXPECT_GE(n, 3);
}
