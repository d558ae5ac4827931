// Process helpers whose C declarations do not import into Swift (prctl is variadic).
#include <signal.h>
#include <sys/prctl.h>

/// Asks the kernel to send SIGTERM to this process when its parent dies (Linux), so the
/// workers of a local run never outlive their coordinator.
static inline int mi_die_with_parent(void) { return prctl(PR_SET_PDEATHSIG, SIGTERM); }

/// Unblocks every signal and restores SIGINT/SIGTERM to their default action. A process
/// started by a Swift program inherits the signal mask of the spawning thread, which the
/// runtime's threads block; call this first thing in main, before any thread exists.
static inline void mi_reset_signals(void) {
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}
