// Debian libstb-dev: the shared library carries the implementations, so only the
// declarations are included here (no STB_*_IMPLEMENTATION).
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
