// Must not compile in the exec layer's view: train is above exec.
#include "train/parameters.h"
