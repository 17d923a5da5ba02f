// Plots as standalone SVG files that any browser opens: one renderer for
// every plot the pipeline draws (loss and accuracy curves, the activation
// histogram).
//
//   PlotSpec plot;
//   plot.title = "test accuracy";
//   plot.x_label = "epoch";
//   plot.y_label = "accuracy (%)";
//   plot.series.push_back({"fp32", {1, 2, 3}, {85.1, 87.0, 88.2}});
//   WriteFile("accuracy.svg", RenderSvgPlot(plot));
//
// Axes get ticks at "nice" steps, a label each, and a legend names the
// series.  Bar series draw one bar per x (the bar spans [x, x + width));
// markers are vertical dashed lines with a caption, e.g. a calibrated range.
#ifndef QAT_EXAMPLES_CLI_SVG_PLOT_H_
#define QAT_EXAMPLES_CLI_SVG_PLOT_H_

#include <string>
#include <utility>
#include <vector>

namespace qat_cli {

struct PlotSeries {
  PlotSeries() = default;
  explicit PlotSeries(std::string series_name) : name(std::move(series_name)) {}
  std::string name;
  std::vector<double> x, y;
  bool bars = false;       // a histogram: bars of width bar_width from x
  bool dashed = false;     // a dashed line (e.g. test loss beside train loss)
  double bar_width = 0.0;
};

struct PlotMarker {
  double x = 0.0;
  std::string label;
};

struct PlotSpec {
  PlotSpec() = default;
  PlotSpec(std::string plot_title, std::string x, std::string y)
      : title(std::move(plot_title)), x_label(std::move(x)), y_label(std::move(y)) {}
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  std::vector<PlotMarker> markers;
  bool y_from_zero = false;  // include 0 in the y range
  bool log_y = false;        // plot log10(1 + y); ticks show y
  bool integer_x = false;    // x ticks at integers only (epochs)
  // When set, these labels (slanted, e.g. layer names) replace the numeric
  // x ticks, each at its x.
  std::vector<std::pair<double, std::string>> x_tick_labels;
};

// The plot as a complete SVG document.  Empty series are skipped; a plot
// with no points still renders its axes and title.
std::string RenderSvgPlot(const PlotSpec& spec);

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_SVG_PLOT_H_
