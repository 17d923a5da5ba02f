// Must not compile in the exec layer's view: qat/trainer.h belongs to train.
#include "qat/trainer.h"
