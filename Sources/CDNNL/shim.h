// oneDNN C API (Debian libdnnl-dev 2.6) plus the OpenMP call that sets its thread count.
#include <oneapi/dnnl/dnnl.h>

// From libgomp (oneDNN's Debian build uses the OpenMP runtime); declared here because
// gcc's omp.h is not on clang's include path.
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);

// `DNNL_MEMORY_ALLOCATE` is `((void *)(size_t)-1)` in C and does not import into Swift.
static inline void *mi_dnnl_memory_allocate(void) { return DNNL_MEMORY_ALLOCATE; }
#include <malloc.h>  // mallopt, for ProcessTuning
