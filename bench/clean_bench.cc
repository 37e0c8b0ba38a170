// The cleaner benchmark (Outbox::Clean): see RegisterCleanBenchmarks.
#include "harness.h"
#include "report.h"

namespace jbench {

void RegisterCleanBenchmarks() {}

}  // namespace jbench
