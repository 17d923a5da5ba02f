// The manifest of gradient rules: for every op the gradient builder knows,
// which of its inputs are differentiable, and the rule that differentiates it.
// One line per op, in one of three forms:
//
//   QAT_GRAD_RULE(domain, op type, differentiable inputs, rule function)
//   QAT_NO_GRAD(domain, op type)
//       outputs that carry no gradient (shapes, comparisons, integer
//       plumbing): the builder stops there without error;
//   QAT_GRAD_MISSING(domain, op type, differentiable inputs)
//       no rule yet; listed for its constant inputs, which are never
//       trainable, while the builder reports the op when a gradient must
//       cross it (as it does for any op not listed here).
//
// Differentiable inputs (gradient_rules.h, GradInputs): Inputs(0, 1) names
// input slots, AllInputs() is every slot of a variadic op, and
// .QuantParams(1, 2) adds quantization parameters: differentiable (LSQ), but
// trainable only with learn_quant_params.  Every other slot holds a constant
// of the op (shape, axes, indices, Clip's bounds, BatchNormalization's
// running statistics, Dropout's ratio and mode, labels, class weights, a
// scale or zero point that is not learned).  This one declaration drives the
// builder (a parameter reaching another slot is an error naming the node and
// the input), the choice of default trainable parameters, and the test that
// every rule emits gradients exactly for its differentiable slots.
//
// Included with the macros defined by the includer; a form the includer does
// not define lists nothing.  No include guard.
#ifndef QAT_NO_GRAD
#define QAT_NO_GRAD(domain, op)
#define QAT_NO_GRAD_DEFAULTED_
#endif
#ifndef QAT_GRAD_MISSING
#define QAT_GRAD_MISSING(domain, op, inputs)
#define QAT_GRAD_MISSING_DEFAULTED_
#endif
#ifndef QAT_GRAD_RULE
#define QAT_GRAD_RULE(domain, op, inputs, fn)
#define QAT_GRAD_RULE_DEFAULTED_
#endif

// Elementwise (grad_rules_elementwise.cc)
QAT_GRAD_RULE("", "Add", Inputs(0, 1), GradAdd)
QAT_GRAD_RULE("", "Sub", Inputs(0, 1), GradSub)
QAT_GRAD_RULE("", "Mul", Inputs(0, 1), GradMul)
QAT_GRAD_RULE("", "Div", Inputs(0, 1), GradDiv)
QAT_GRAD_RULE("", "Neg", Inputs(0), GradNeg)
QAT_GRAD_RULE("", "Abs", Inputs(0), GradAbs)
QAT_GRAD_RULE("", "Sqrt", Inputs(0), GradSqrt)
QAT_GRAD_RULE("", "Exp", Inputs(0), GradExp)
QAT_GRAD_RULE("", "Log", Inputs(0), GradLog)
QAT_GRAD_RULE("", "Pow", Inputs(0, 1), GradPow)
QAT_GRAD_RULE("", "Relu", Inputs(0), GradRelu)
QAT_GRAD_RULE("", "LeakyRelu", Inputs(0), GradLeakyRelu)
QAT_GRAD_RULE("", "Sigmoid", Inputs(0), GradSigmoid)
QAT_GRAD_RULE("", "Tanh", Inputs(0), GradTanh)
QAT_GRAD_RULE("", "Clip", Inputs(0), GradClip)                 // no gradient: min, max
QAT_GRAD_RULE("", "Where", Inputs(1, 2), GradWhere)            // no gradient: condition
QAT_GRAD_RULE("", "Identity", Inputs(0), GradIdentity)
QAT_GRAD_RULE("", "Cast", Inputs(0), GradCast)
QAT_GRAD_RULE("com.microsoft", "FakeQuant", Inputs(0).QuantParams(1, 2), GradFakeQuant)
QAT_GRAD_RULE("ai.libqat", "FakeQuant", Inputs(0).QuantParams(1, 2), GradFakeQuant)
// Linear algebra and reductions (grad_rules_linalg.cc)
QAT_GRAD_RULE("", "Gemm", Inputs(0, 1, 2), GradGemm)
QAT_GRAD_RULE("", "MatMul", Inputs(0, 1), GradMatMul)
QAT_GRAD_RULE("", "ReduceSum", Inputs(0), GradReduceSum)       // no gradient: axes
QAT_GRAD_RULE("", "ReduceMean", Inputs(0), GradReduceMean)     // no gradient: axes
QAT_GRAD_RULE("", "Softmax", Inputs(0), GradSoftmax)
QAT_GRAD_RULE("", "LogSoftmax", Inputs(0), GradLogSoftmax)
// Shape and layout (grad_rules_shape.cc)
QAT_GRAD_RULE("", "Reshape", Inputs(0), GradReshapeLike)       // no gradient: shape
QAT_GRAD_RULE("", "Flatten", Inputs(0), GradReshapeLike)
QAT_GRAD_RULE("", "Squeeze", Inputs(0), GradReshapeLike)       // no gradient: axes
QAT_GRAD_RULE("", "Unsqueeze", Inputs(0), GradReshapeLike)     // no gradient: axes
QAT_GRAD_RULE("", "Transpose", Inputs(0), GradTranspose)
QAT_GRAD_RULE("", "Concat", AllInputs(), GradConcat)
QAT_GRAD_RULE("", "Gather", Inputs(0), GradGather)             // no gradient: indices
QAT_GRAD_RULE("", "Slice", Inputs(0), GradSlice)               // no gradient: starts, ends, ...
QAT_GRAD_RULE("", "Expand", Inputs(0), GradExpand)             // no gradient: shape
// Convolution, pooling, normalization (grad_rules_nn.cc)
QAT_GRAD_RULE("", "Conv", Inputs(0, 1, 2), GradConv)
QAT_GRAD_RULE("", "ConvTranspose", Inputs(0, 1, 2), GradConvTranspose)
QAT_GRAD_RULE("", "MaxPool", Inputs(0), GradMaxPool)
QAT_GRAD_RULE("", "AveragePool", Inputs(0), GradAveragePool)
QAT_GRAD_RULE("", "GlobalAveragePool", Inputs(0), GradGlobalAveragePool)
// (BatchNormalization: no gradient for the running mean and variance)
QAT_GRAD_RULE("", "BatchNormalization", Inputs(0, 1, 2), GradBatchNormalization)
QAT_GRAD_RULE("", "Dropout", Inputs(0), GradDropout)           // no gradient: ratio, training_mode
// Losses (grad_rules_loss.cc); no gradient for the labels and class weights
QAT_GRAD_RULE("", "SoftmaxCrossEntropyLoss", Inputs(0), GradSoftmaxCrossEntropyLoss)
QAT_GRAD_RULE("", "NegativeLogLikelihoodLoss", Inputs(0), GradNegativeLogLikelihoodLoss)

// Activations and math (grad_rules_activation.cc)
QAT_GRAD_RULE("", "Erf", Inputs(0), GradErf)
QAT_GRAD_RULE("", "HardSigmoid", Inputs(0), GradHardSigmoid)
QAT_GRAD_RULE("", "HardSwish", Inputs(0), GradHardSwish)
QAT_GRAD_RULE("", "PRelu", Inputs(0, 1), GradPRelu)
QAT_GRAD_RULE("", "Elu", Inputs(0), GradElu)
QAT_GRAD_RULE("", "Selu", Inputs(0), GradSelu)
QAT_GRAD_RULE("", "Softplus", Inputs(0), GradSoftplus)
QAT_GRAD_RULE("", "Celu", Inputs(0), GradCelu)
QAT_GRAD_RULE("", "ThresholdedRelu", Inputs(0), GradThresholdedRelu)
QAT_GRAD_RULE("", "Shrink", Inputs(0), GradShrink)
QAT_GRAD_RULE("", "Reciprocal", Inputs(0), GradReciprocal)
QAT_GRAD_RULE("", "Softsign", Inputs(0), GradSoftsign)
QAT_GRAD_RULE("", "Sin", Inputs(0), GradSin)
QAT_GRAD_RULE("", "Cos", Inputs(0), GradCos)
QAT_GRAD_RULE("", "Max", AllInputs(), GradMax)                 // ties share evenly
QAT_GRAD_RULE("", "Min", AllInputs(), GradMin)                 // ties share evenly
QAT_GRAD_RULE("", "Sum", AllInputs(), GradSum)
QAT_GRAD_RULE("", "Mean", AllInputs(), GradMean)
QAT_NO_GRAD("", "Xor")
QAT_NO_GRAD("", "IsInf")
QAT_NO_GRAD("", "IsNaN")
QAT_NO_GRAD("", "BitShift")

// Reductions, scans and Einsum (grad_rules_reduce.cc)
QAT_GRAD_RULE("", "ReduceMax", Inputs(0), GradReduceMax)       // no gradient: axes
QAT_GRAD_RULE("", "ReduceMin", Inputs(0), GradReduceMin)       // no gradient: axes
QAT_GRAD_RULE("", "ReduceProd", Inputs(0), GradReduceProd)     // no gradient: axes
QAT_GRAD_RULE("", "ReduceL1", Inputs(0), GradReduceL1)         // no gradient: axes
QAT_GRAD_RULE("", "ReduceL2", Inputs(0), GradReduceL2)         // no gradient: axes
QAT_GRAD_RULE("", "ReduceLogSum", Inputs(0), GradReduceLogSum) // no gradient: axes
QAT_GRAD_RULE("", "ReduceLogSumExp", Inputs(0), GradReduceLogSumExp)  // no gradient: axes
QAT_GRAD_RULE("", "ReduceSumSquare", Inputs(0), GradReduceSumSquare)  // no gradient: axes
QAT_GRAD_RULE("", "CumSum", Inputs(0), GradCumSum)             // no gradient: axis
QAT_GRAD_RULE("", "TopK", Inputs(0), GradTopK)                 // no gradient: k
QAT_GRAD_RULE("", "Trilu", Inputs(0), GradTrilu)               // no gradient: k
QAT_GRAD_RULE("", "Einsum", AllInputs(), GradEinsum)

// Indexing and layout (grad_rules_indexing.cc); no gradient for indices,
// sequence lengths, repeats, pads and Pad's constant value.  (Compress has
// none yet: its output's shape depends on the condition's values, which
// shape inference cannot follow.)
QAT_GRAD_RULE("", "GatherElements", Inputs(0), GradGatherElements)
QAT_GRAD_RULE("", "GatherND", Inputs(0), GradGatherND)
QAT_GRAD_RULE("", "ReverseSequence", Inputs(0), GradReverseSequence)
QAT_GRAD_RULE("", "Tile", Inputs(0), GradTile)
QAT_GRAD_RULE("", "Pad", Inputs(0), GradPad)
QAT_GRAD_RULE("", "DepthToSpace", Inputs(0), GradDepthToSpace)
QAT_GRAD_RULE("", "SpaceToDepth", Inputs(0), GradSpaceToDepth)
QAT_NO_GRAD("", "NonZero")
QAT_NO_GRAD("", "EyeLike")

// Resize and normalization layers (grad_rules_norm.cc)
QAT_GRAD_RULE("", "Resize", Inputs(0), GradResize)             // no gradient: roi, scales, sizes
QAT_GRAD_RULE("", "Upsample", Inputs(0), GradResize)           // no gradient: scales
QAT_GRAD_RULE("", "LayerNormalization", Inputs(0, 1, 2), GradLayerNormalization)
QAT_GRAD_RULE("", "InstanceNormalization", Inputs(0, 1, 2), GradInstanceNormalization)
QAT_GRAD_RULE("", "GlobalMaxPool", Inputs(0), GradGlobalMaxPool)

// No rule yet: the scale and zero point are constants of the QDQ form.
QAT_GRAD_MISSING("", "QuantizeLinear", Inputs(0))
QAT_GRAD_MISSING("", "DequantizeLinear", Inputs(0))

// Outputs without a gradient.
QAT_NO_GRAD("", "Shape")
QAT_NO_GRAD("", "Size")
QAT_NO_GRAD("", "Equal")
QAT_NO_GRAD("", "Less")
QAT_NO_GRAD("", "Greater")
QAT_NO_GRAD("", "LessOrEqual")
QAT_NO_GRAD("", "GreaterOrEqual")
QAT_NO_GRAD("", "And")
QAT_NO_GRAD("", "Or")
QAT_NO_GRAD("", "Not")
QAT_NO_GRAD("", "Round")
QAT_NO_GRAD("", "Floor")
QAT_NO_GRAD("", "Ceil")
QAT_NO_GRAD("", "Sign")
QAT_NO_GRAD("", "ArgMax")
QAT_NO_GRAD("", "ArgMin")
QAT_NO_GRAD("", "ConstantOfShape")
QAT_NO_GRAD("", "Constant")
QAT_NO_GRAD("", "OneHot")
QAT_NO_GRAD("", "Range")
QAT_NO_GRAD("", "TfIdfVectorizer")

#ifdef QAT_NO_GRAD_DEFAULTED_
#undef QAT_NO_GRAD
#undef QAT_NO_GRAD_DEFAULTED_
#endif
#ifdef QAT_GRAD_MISSING_DEFAULTED_
#undef QAT_GRAD_MISSING
#undef QAT_GRAD_MISSING_DEFAULTED_
#endif
#ifdef QAT_GRAD_RULE_DEFAULTED_
#undef QAT_GRAD_RULE
#undef QAT_GRAD_RULE_DEFAULTED_
#endif
