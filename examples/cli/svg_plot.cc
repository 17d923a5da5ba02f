#include "svg_plot.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace qat_cli {
namespace {

// The plot area; the legend sits to its right.
constexpr double kWidth = 800, kHeight = 440;
constexpr double kLeft = 80, kRight = 600, kTop = 50, kBottom = 380;
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                   "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

std::string Escape(const std::string& text) {
  return absl::StrReplaceAll(text, {{"&", "&amp;"}, {"<", "&lt;"}, {">", "&gt;"}});
}

// Tick positions at 1, 2 or 5 times a power of ten, about `target` of them.
std::vector<double> Ticks(double lo, double hi, int target, bool integers) {
  double step = (hi - lo) / std::max(1, target);
  if (!(step > 0)) return {lo};
  const double magnitude = std::pow(10.0, std::floor(std::log10(step)));
  const double unit = step / magnitude;
  step = (unit < 1.5 ? 1 : unit < 3.5 ? 2 : unit < 7.5 ? 5 : 10) * magnitude;
  if (integers) step = std::max(1.0, std::round(step));
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + 1e-9 * step; t += step) {
    ticks.push_back(std::abs(t) < 1e-12 * step ? 0.0 : t);
  }
  return ticks;
}

std::string TickLabel(double v) { return absl::StrFormat("%.6g", v); }

}  // namespace

std::string RenderSvgPlot(const PlotSpec& spec) {
  auto ty = [&](double y) { return spec.log_y ? std::log10(1.0 + std::max(0.0, y)) : y; };
  // The data range, over points, bar ends and markers.
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo;
  double y_lo = x_lo, y_hi = -x_lo;
  for (const PlotSeries& s : spec.series) {
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i] + (s.bars ? s.bar_width : 0.0));
      y_lo = std::min(y_lo, ty(s.y[i]));
      y_hi = std::max(y_hi, ty(s.y[i]));
    }
  }
  for (const PlotMarker& m : spec.markers) {
    x_lo = std::min(x_lo, m.x);
    x_hi = std::max(x_hi, m.x);
  }
  if (!(x_lo <= x_hi)) x_lo = 0, x_hi = 1;
  if (!(y_lo <= y_hi)) y_lo = 0, y_hi = 1;
  if (spec.y_from_zero || spec.log_y) y_lo = std::min(y_lo, 0.0);
  if (x_hi - x_lo < 1e-12) x_lo -= 0.5, x_hi += 0.5;
  if (y_hi - y_lo < 1e-12) y_lo -= 0.5, y_hi += 0.5;
  const double y_pad = 0.05 * (y_hi - y_lo);
  if (!spec.y_from_zero && !spec.log_y) y_lo -= y_pad;
  y_hi += y_pad;
  auto px = [&](double x) { return kLeft + (kRight - kLeft) * (x - x_lo) / (x_hi - x_lo); };
  auto py = [&](double y) { return kBottom - (kBottom - kTop) * (y - y_lo) / (y_hi - y_lo); };

  std::string svg = absl::StrFormat(
      "<svg xmlns='http://www.w3.org/2000/svg' width='%g' height='%g' "
      "font-family='sans-serif' font-size='12'>\n<rect width='%g' height='%g' fill='white'/>\n"
      "<text x='%g' y='24' text-anchor='middle' font-size='15'>%s</text>\n",
      kWidth, kHeight, kWidth, kHeight, (kLeft + kRight) / 2, Escape(spec.title));
  // Axes, grid and ticks.
  for (double t : spec.x_tick_labels.empty() ? Ticks(x_lo, x_hi, 8, spec.integer_x)
                                              : std::vector<double>{}) {
    absl::StrAppendFormat(&svg,
                          "<line x1='%.1f' y1='%g' x2='%.1f' y2='%g' stroke='#ddd'/>"
                          "<text x='%.1f' y='%g' text-anchor='middle'>%s</text>\n",
                          px(t), kTop, px(t), kBottom, px(t), kBottom + 16, TickLabel(t));
  }
  for (const auto& [x, label] : spec.x_tick_labels) {
    const std::string text = label.size() > 28 ? "..." + label.substr(label.size() - 25) : label;
    absl::StrAppendFormat(&svg,
                          "<text x='%.1f' y='%g' text-anchor='end' font-size='10' "
                          "transform='rotate(-30 %.1f %g)'>%s</text>\n",
                          px(x), kBottom + 12, px(x), kBottom + 12, Escape(text));
  }
  std::vector<double> y_ticks;
  if (spec.log_y) {  // counts 0, 1, 10, 100, ... at log10(1 + count)
    y_ticks.push_back(0.0);
    for (double c = 1; ty(c) <= y_hi; c *= 10) y_ticks.push_back(ty(c));
  } else {
    y_ticks = Ticks(y_lo, y_hi, 6, false);
  }
  for (double t : y_ticks) {
    const std::string label =
        spec.log_y ? TickLabel(std::round(std::pow(10.0, t) - 1.0)) : TickLabel(t);
    absl::StrAppendFormat(&svg,
                          "<line x1='%g' y1='%.1f' x2='%g' y2='%.1f' stroke='#ddd'/>"
                          "<text x='%g' y='%.1f' text-anchor='end'>%s</text>\n",
                          kLeft, py(t), kRight, py(t), kLeft - 6, py(t) + 4, label);
  }
  absl::StrAppendFormat(&svg,
                        "<rect x='%g' y='%g' width='%g' height='%g' fill='none' stroke='black'/>\n"
                        "<text x='%g' y='%g' text-anchor='middle'>%s</text>\n"
                        "<text x='18' y='%g' text-anchor='middle' "
                        "transform='rotate(-90 18 %g)'>%s</text>\n",
                        kLeft, kTop, kRight - kLeft, kBottom - kTop, (kLeft + kRight) / 2,
                        kBottom + 40, Escape(spec.x_label), (kTop + kBottom) / 2,
                        (kTop + kBottom) / 2,
                        Escape(spec.y_label + (spec.log_y ? " (log scale)" : "")));
  // Series, then the legend.
  int legend_row = 0;
  for (size_t k = 0; k < spec.series.size(); ++k) {
    const PlotSeries& s = spec.series[k];
    const size_t n = std::min(s.x.size(), s.y.size());
    if (n == 0) continue;
    const char* color = kColors[k % (sizeof kColors / sizeof kColors[0])];
    if (s.bars) {
      for (size_t i = 0; i < n; ++i) {
        // From the base line to the value, below it for a negative value.
        const double end = py(ty(s.y[i])), base = py(std::max(y_lo, 0.0));
        absl::StrAppendFormat(&svg,
                              "<rect x='%.2f' y='%.2f' width='%.2f' height='%.2f' fill='%s' "
                              "fill-opacity='0.7'/>\n",
                              px(s.x[i]), std::min(end, base),
                              std::max(0.5, px(s.x[i] + s.bar_width) - px(s.x[i])),
                              std::abs(base - end), color);
      }
    } else {
      std::vector<std::string> points;
      for (size_t i = 0; i < n; ++i) {
        points.push_back(absl::StrFormat("%.1f,%.1f", px(s.x[i]), py(ty(s.y[i]))));
        absl::StrAppendFormat(&svg, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                              px(s.x[i]), py(ty(s.y[i])), color);
      }
      absl::StrAppend(&svg, "<polyline fill='none' stroke-width='2' stroke='", color,
                      s.dashed ? "' stroke-dasharray='6,3" : "", "' points='",
                      absl::StrJoin(points, " "), "'/>\n");
    }
    const double ly = kTop + 16 + 18 * legend_row++;
    absl::StrAppendFormat(&svg,
                          "<rect x='%g' y='%g' width='14' height='10' fill='%s'/>"
                          "<text x='%g' y='%g'>%s</text>\n",
                          kRight + 12, ly - 9, color, kRight + 32, ly, Escape(s.name));
  }
  // Marker captions sit inside the plot, one row each, on the side of the
  // line that has room.
  for (size_t i = 0; i < spec.markers.size(); ++i) {
    const PlotMarker& m = spec.markers[i];
    const bool right_half = px(m.x) > (kLeft + kRight) / 2;
    absl::StrAppendFormat(&svg,
                          "<line x1='%.1f' y1='%g' x2='%.1f' y2='%g' stroke='black' "
                          "stroke-dasharray='6,4'/>"
                          "<text x='%.1f' y='%g' text-anchor='%s'>%s</text>\n",
                          px(m.x), kTop, px(m.x), kBottom, px(m.x) + (right_half ? -4 : 4),
                          kTop + 16 + 16 * static_cast<double>(i),
                          right_half ? "end" : "start", Escape(m.label));
  }
  return svg + "</svg>\n";
}

}  // namespace qat_cli
