// Interpolation weights shared by Resize (resize.cc) and GridSample
// (detection.cc), written as ONNX's reference implementations compute them.
#ifndef QAT_LIB_EXEC_OPS_INTERPOLATION_H_
#define QAT_LIB_EXEC_OPS_INTERPOLATION_H_

namespace qat {
namespace exec {

// Keys' cubic convolution: the weights of the four taps at -1, 0, 1 and 2
// around a point at `ratio` in [0, 1] past tap 0, for the coefficient `a`
// (-0.75 in Resize's default and in GridSample, -0.5 in some exporters).
inline void CubicWeights(double ratio, double a, double w[4]) {
  const double r1 = ratio + 1, q = 1 - ratio, q1 = q + 1;
  w[0] = ((a * r1 - 5 * a) * r1 + 8 * a) * r1 - 4 * a;
  w[1] = ((a + 2) * ratio - (a + 3)) * ratio * ratio + 1;
  w[2] = ((a + 2) * q - (a + 3)) * q * q + 1;
  w[3] = ((a * q1 - 5 * a) * q1 + 8 * a) * q1 - 4 * a;
}

}  // namespace exec
}  // namespace qat

#endif  // QAT_LIB_EXEC_OPS_INTERPOLATION_H_
