// Compiles in the exec layer's view: its own and lower layers' headers.
#include "core/file_util.h"
#include "exec/kernel.h"
#include "qat/executor.h"
#include "qat/fake_quant.h"
