// Process helpers whose C declarations do not import into Swift (prctl is variadic).
#include <signal.h>
#include <sys/prctl.h>

/// Asks the kernel to send SIGTERM to this process when its parent dies (Linux), so the
/// workers of a local run never outlive their coordinator.
static inline int mi_die_with_parent(void) { return prctl(PR_SET_PDEATHSIG, SIGTERM); }
