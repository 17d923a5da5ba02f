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
QAT_OP("", "Or", 7, MakeOr)
QAT_OP("", "Xor", 7, MakeXor)
QAT_OP("", "Not", 1, MakeNot)
QAT_OP("", "Where", 9, MakeWhere)

// lib/exec/ops/softmax.cc
QAT_OP("", "Softmax", 1, MakeSoftmax)
QAT_OP("", "LogSoftmax", 1, MakeLogSoftmax)

// lib/exec/ops/plumbing.cc
QAT_OP("", "Identity", 1, MakeIdentity)
QAT_OP("", "Constant", 1, MakeConstant)
QAT_OP("", "Cast", 6, MakeCast)
QAT_OP("", "CastLike", 15, MakeCastLike)

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
QAT_OP("", "ReduceMin", 1, MakeReduceMin)
QAT_OP("", "ReduceL1", 1, MakeReduceL1)
QAT_OP("", "ReduceL2", 1, MakeReduceL2)
QAT_OP("", "ReduceLogSum", 1, MakeReduceLogSum)
QAT_OP("", "ReduceLogSumExp", 1, MakeReduceLogSumExp)
QAT_OP("", "ReduceSumSquare", 1, MakeReduceSumSquare)

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
QAT_OP("", "GlobalMaxPool", 1, MakeGlobalMaxPool)
QAT_OP("", "MaxUnpool", 9, MakeMaxUnpool)

// lib/exec/ops/normalization.cc
QAT_OP("", "BatchNormalization", 6, MakeBatchNormalization)
QAT_OP("ai.libqat", "BatchMean", 1, MakeBatchMean)
QAT_OP("", "Dropout", 7, MakeDropout)
QAT_OP("", "LayerNormalization", 17, MakeLayerNormalization)
QAT_OP("", "InstanceNormalization", 6, MakeInstanceNormalization)
QAT_OP("", "LRN", 1, MakeLRN)
QAT_OP("", "MeanVarianceNormalization", 9, MakeMeanVarianceNormalization)

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
// (numpy broadcasting, which covers the same-shape inputs before opset 8),
// Mod, BitShift
QAT_OP("", "Erf", 9, MakeErf)
QAT_OP("", "Floor", 6, MakeFloor)
QAT_OP("", "Ceil", 6, MakeCeil)
QAT_OP("", "Reciprocal", 6, MakeReciprocal)
QAT_OP("", "Sin", 7, MakeSin)
QAT_OP("", "Cos", 7, MakeCos)
QAT_OP("", "Tan", 7, MakeTan)
QAT_OP("", "Asin", 7, MakeAsin)
QAT_OP("", "Acos", 7, MakeAcos)
QAT_OP("", "Atan", 7, MakeAtan)
QAT_OP("", "Sinh", 9, MakeSinh)
QAT_OP("", "Cosh", 9, MakeCosh)
QAT_OP("", "Asinh", 9, MakeAsinh)
QAT_OP("", "Acosh", 9, MakeAcosh)
QAT_OP("", "Atanh", 9, MakeAtanh)
QAT_OP("", "Softsign", 1, MakeSoftsign)
QAT_OP("", "IsInf", 10, MakeIsInf)
QAT_OP("", "IsNaN", 9, MakeIsNaN)
QAT_OP("", "HardSigmoid", 6, MakeHardSigmoid)
QAT_OP("", "HardSwish", 14, MakeHardSwish)
QAT_OP("", "PRelu", 6, MakePRelu)
QAT_OP("", "Elu", 6, MakeElu)
QAT_OP("", "Selu", 6, MakeSelu)
QAT_OP("", "Softplus", 1, MakeSoftplus)
QAT_OP("", "Celu", 12, MakeCelu)
QAT_OP("", "ThresholdedRelu", 10, MakeThresholdedRelu)
QAT_OP("", "Shrink", 9, MakeShrink)
QAT_OP("", "Max", 6, MakeMax)
QAT_OP("", "Min", 6, MakeMin)
QAT_OP("", "Sum", 6, MakeSum)
QAT_OP("", "Mean", 6, MakeMean)
QAT_OP("", "Mod", 10, MakeMod)
QAT_OP("", "BitShift", 11, MakeBitShift)

// lib/exec/ops/scan_sort.cc and lib/exec/ops/einsum.cc: ArgMax/ArgMin,
// TopK, CumSum, Hardmax, Trilu, Einsum
QAT_OP("", "ArgMax", 1, MakeArgMax)
QAT_OP("", "ArgMin", 1, MakeArgMin)
QAT_OP("", "TopK", 1, MakeTopK)
QAT_OP("", "CumSum", 11, MakeCumSum)
QAT_OP("", "Hardmax", 1, MakeHardmax)
QAT_OP("", "Trilu", 14, MakeTrilu)
QAT_OP("", "Einsum", 12, MakeEinsum)

// lib/exec/ops/indexing.cc
QAT_OP("", "GatherElements", 11, MakeGatherElements)
QAT_OP("", "GatherND", 11, MakeGatherND)
QAT_OP("", "ScatterND", 11, MakeScatterND)
QAT_OP("", "Scatter", 9, MakeScatter)
QAT_OP("", "OneHot", 9, MakeOneHot)
QAT_OP("", "Compress", 9, MakeCompress)
QAT_OP("", "NonZero", 9, MakeNonZero)
QAT_OP("", "Unique", 11, MakeUnique)
QAT_OP("", "ReverseSequence", 10, MakeReverseSequence)

// lib/exec/ops/tensor_layout.cc
QAT_OP("", "Size", 1, MakeSize)
QAT_OP("", "ConstantOfShape", 9, MakeConstantOfShape)
QAT_OP("", "Range", 11, MakeRange)
QAT_OP("", "EyeLike", 9, MakeEyeLike)
QAT_OP("", "Tile", 6, MakeTile)
QAT_OP("", "Pad", 2, MakePad)
QAT_OP("", "DepthToSpace", 1, MakeDepthToSpace)
QAT_OP("", "SpaceToDepth", 1, MakeSpaceToDepth)

// lib/exec/ops/resize.cc and lib/exec/ops/detection.cc: Resize, Upsample,
// GridSample, RoiAlign, NonMaxSuppression
QAT_OP("", "Resize", 10, MakeResize)
QAT_OP("", "Upsample", 7, MakeUpsample)
QAT_OP("ai.libqat", "ResizeGrad", 1, MakeResizeGrad)
QAT_OP("", "GridSample", 16, MakeGridSample)
QAT_OP("", "RoiAlign", 10, MakeRoiAlign)
QAT_OP("", "NonMaxSuppression", 10, MakeNonMaxSuppression)

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

// lib/exec/ops/text.cc
QAT_OP("", "TfIdfVectorizer", 9, MakeTfIdfVectorizer)
