// The manifest of every op the executor runs: one line per op, in families
// that match the files in lib/exec/ops/.
//
//   QAT_OP(domain, op_type, since_opset, factory)
//
// since_opset is the first opset version whose semantics the kernel
// implements (older versions are reported as unsupported).  A kernel that
// handles an attribute-to-input change (Clip, Slice, Squeeze, ...) checks
// NodeView::opset() itself.  The file that includes this list defines QAT_OP.

// lib/exec/ops/elementwise.cc
QAT_OP("", "Add", 1, MakeAdd)
QAT_OP("", "Sub", 1, MakeSub)
QAT_OP("", "Mul", 1, MakeMul)
QAT_OP("", "Div", 1, MakeDiv)
QAT_OP("", "Pow", 1, MakePow)
QAT_OP("", "Neg", 6, MakeNeg)
QAT_OP("", "Abs", 6, MakeAbs)
QAT_OP("", "Sqrt", 6, MakeSqrt)
QAT_OP("", "Exp", 6, MakeExp)
QAT_OP("", "Log", 6, MakeLog)
QAT_OP("", "Round", 11, MakeRound)
QAT_OP("", "Relu", 6, MakeRelu)
QAT_OP("", "LeakyRelu", 6, MakeLeakyRelu)
QAT_OP("", "Sigmoid", 6, MakeSigmoid)
QAT_OP("", "Tanh", 6, MakeTanh)
QAT_OP("", "Clip", 6, MakeClip)

// lib/exec/ops/logic.cc
QAT_OP("", "Equal", 7, MakeEqual)
QAT_OP("", "Less", 7, MakeLess)
QAT_OP("", "Greater", 7, MakeGreater)
QAT_OP("", "LessOrEqual", 12, MakeLessOrEqual)
QAT_OP("", "GreaterOrEqual", 12, MakeGreaterOrEqual)
QAT_OP("", "And", 7, MakeAnd)
QAT_OP("", "Not", 1, MakeNot)
QAT_OP("", "Where", 9, MakeWhere)

// lib/exec/ops/softmax.cc
QAT_OP("", "Softmax", 1, MakeSoftmax)
QAT_OP("", "LogSoftmax", 1, MakeLogSoftmax)

// lib/exec/ops/plumbing.cc
QAT_OP("", "Identity", 1, MakeIdentity)
QAT_OP("", "Constant", 1, MakeConstant)
QAT_OP("", "Cast", 6, MakeCast)

// lib/exec/ops/shape_ops.cc
QAT_OP("", "Shape", 1, MakeShape)
QAT_OP("", "Reshape", 5, MakeReshape)
QAT_OP("", "Flatten", 1, MakeFlatten)
QAT_OP("", "Transpose", 1, MakeTranspose)
QAT_OP("", "Squeeze", 1, MakeSqueeze)
QAT_OP("", "Unsqueeze", 1, MakeUnsqueeze)
QAT_OP("", "Concat", 4, MakeConcat)
QAT_OP("", "Gather", 1, MakeGather)
QAT_OP("", "Slice", 1, MakeSlice)

// lib/exec/ops/reduce.cc
QAT_OP("", "ReduceSum", 1, MakeReduceSum)
QAT_OP("", "ReduceMean", 1, MakeReduceMean)
QAT_OP("", "ReduceMax", 1, MakeReduceMax)

// lib/exec/ops/linalg.cc
QAT_OP("", "MatMul", 1, MakeMatMul)
QAT_OP("", "Gemm", 1, MakeGemm)
QAT_OP("", "Det", 11, MakeDet)

// lib/exec/ops/conv.cc
QAT_OP("", "Conv", 1, MakeConv)

// lib/exec/ops/pool.cc
QAT_OP("", "MaxPool", 1, MakeMaxPool)
QAT_OP("", "AveragePool", 1, MakeAveragePool)
QAT_OP("", "GlobalAveragePool", 1, MakeGlobalAveragePool)

// lib/exec/ops/normalization.cc
QAT_OP("", "BatchNormalization", 6, MakeBatchNormalization)
QAT_OP("", "Dropout", 7, MakeDropout)

// lib/exec/ops/quantize.cc
QAT_OP("", "QuantizeLinear", 10, MakeQuantizeLinear)
QAT_OP("", "DequantizeLinear", 10, MakeDequantizeLinear)
QAT_OP("com.microsoft", "FakeQuant", 1, MakeFakeQuantPerTensor)
QAT_OP("ai.libqat", "FakeQuant", 1, MakeFakeQuantPerChannel)
QAT_OP("com.microsoft", "FakeQuantGrad", 1, MakeFakeQuantGrad)
QAT_OP("ai.libqat", "FakeQuantLsqGrad", 1, MakeFakeQuantLsqGrad)

// lib/exec/ops/loss.cc
QAT_OP("", "SoftmaxCrossEntropyLoss", 12, MakeSoftmaxCrossEntropyLoss)
QAT_OP("", "NegativeLogLikelihoodLoss", 12, MakeNegativeLogLikelihoodLoss)

// lib/exec/ops/training_ops.cc (ReduceProd's factory is in lib/ops/reduce.cc)
QAT_OP("", "Sign", 9, MakeSign)
QAT_OP("", "Expand", 8, MakeExpand)
QAT_OP("", "Split", 2, MakeSplit)
QAT_OP("", "ScatterElements", 11, MakeScatterElements)
QAT_OP("", "ReduceProd", 1, MakeReduceProd)
QAT_OP("", "ConvTranspose", 1, MakeConvTranspose)

// lib/exec/ops/math.cc: unary math, activations, variadic Max/Min/Sum/Mean

// lib/exec/ops/scan_sort.cc and lib/exec/ops/einsum.cc: ArgMax/ArgMin,
// TopK, CumSum, Hardmax, Trilu, Einsum

// lib/exec/ops/indexing.cc: GatherElements, GatherND, ScatterND, OneHot, ...

// lib/exec/ops/tensor_layout.cc: Size, ConstantOfShape, Range, Tile, Pad, ...

// lib/exec/ops/resize.cc and lib/exec/ops/detection.cc: Resize, Upsample,
// GridSample, RoiAlign, NonMaxSuppression

// lib/exec/ops/control_flow.cc
QAT_OP("", "If", 1, MakeIf)
QAT_OP("", "Loop", 1, MakeLoop)
QAT_OP("", "Scan", 8, MakeScan)

// lib/exec/ops/rnn.cc
QAT_OP("", "RNN", 7, MakeRnn)
QAT_OP("", "GRU", 7, MakeGru)
QAT_OP("", "LSTM", 7, MakeLstm)

// lib/exec/ops/integer_ops.cc
QAT_OP("", "ConvInteger", 10, MakeConvInteger)
QAT_OP("", "MatMulInteger", 10, MakeMatMulInteger)
QAT_OP("", "QLinearConv", 10, MakeQLinearConv)
QAT_OP("", "QLinearMatMul", 10, MakeQLinearMatMul)
QAT_OP("", "DynamicQuantizeLinear", 11, MakeDynamicQuantizeLinear)

// lib/exec/ops/signal.cc
QAT_OP("", "DFT", 17, MakeDft)
QAT_OP("", "STFT", 17, MakeStft)
QAT_OP("", "HannWindow", 17, MakeHannWindow)
QAT_OP("", "HammingWindow", 17, MakeHammingWindow)
QAT_OP("", "BlackmanWindow", 17, MakeBlackmanWindow)
QAT_OP("", "MelWeightMatrix", 17, MakeMelWeightMatrix)

// lib/exec/ops/optimizer_ops.cc
QAT_OP("ai.onnx.preview.training", "Adagrad", 1, MakeAdagrad)
QAT_OP("ai.onnx.preview.training", "Momentum", 1, MakeMomentum)
QAT_OP("ai.onnx.preview.training", "Adam", 1, MakeAdam)
