// Builds the photo fixtures of Tests/MagicInitImagesTests/Fixtures (see make-fixtures.sh).
// Decodes a JPEG with libjpeg-turbo, shrinks it with stb_image_resize so the longer side is
// at most MAXSIDE pixels, and writes it as a JPEG (4:2:0), a grayscale JPEG, a CMYK (YCCK)
// JPEG or a PNG.
//
//   mkfix rgb|gray|cmyk IN.jpg OUT.jpg MAXSIDE QUALITY
//   mkfix png IN.jpg OUT.png MAXSIDE
//
// Build: cc -O2 -o mkfix mkfix.c -lturbojpeg -lstb -lm   (Debian: libturbojpeg0-dev, libstb-dev)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

static unsigned char *read_all(const char *path, long *size) {
  FILE *f = fopen(path, "rb");
  if (!f) { perror(path); exit(1); }
  fseek(f, 0, SEEK_END); *size = ftell(f); fseek(f, 0, SEEK_SET);
  unsigned char *bytes = malloc(*size);
  if (fread(bytes, 1, *size, f) != (size_t)*size) { perror(path); exit(1); }
  fclose(f);
  return bytes;
}

static void write_all(const char *path, const unsigned char *bytes, unsigned long size) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(bytes, 1, size, f) != size) { perror(path); exit(1); }
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: mkfix rgb|gray|cmyk|png IN OUT MAXSIDE [QUALITY]\n"); return 2; }
  const char *mode = argv[1];
  long size;
  unsigned char *jpeg = read_all(argv[2], &size);
  tjhandle d = tjInitDecompress();
  int w, h, subsamp, colorspace;
  if (tjDecompressHeader3(d, jpeg, size, &w, &h, &subsamp, &colorspace)) {
    fprintf(stderr, "%s: %s\n", argv[2], tjGetErrorStr2(d)); return 1;
  }
  unsigned char *rgb = malloc((size_t)w * h * 3);
  if (tjDecompress2(d, jpeg, size, rgb, w, 0, h, TJPF_RGB, 0)) {
    fprintf(stderr, "%s: %s\n", argv[2], tjGetErrorStr2(d)); return 1;
  }
  int maxside = atoi(argv[4]);
  double scale = (double)maxside / (w > h ? w : h);
  if (scale > 1) scale = 1;
  int ow = (int)(w * scale + 0.5), oh = (int)(h * scale + 0.5);
  unsigned char *small = malloc((size_t)ow * oh * 3);
  stbir_resize_uint8(rgb, w, h, 0, small, ow, oh, 0, 3);

  if (!strcmp(mode, "png")) {
    if (!stbi_write_png(argv[3], ow, oh, 3, small, ow * 3)) { fprintf(stderr, "png write failed\n"); return 1; }
    printf("%s %dx%d -> %dx%d png\n", argv[3], w, h, ow, oh);
    return 0;
  }
  int quality = atoi(argv[5]);
  tjhandle c = tjInitCompress();
  unsigned char *out = NULL;
  unsigned long outSize = 0;
  int rc;
  if (!strcmp(mode, "cmyk")) {
    // Adobe-style inverted CMYK, the convention libjpeg and stb_image decode with
    // R = C*K/255: K = max(R,G,B), C = 255*R/K.
    unsigned char *cmyk = malloc((size_t)ow * oh * 4);
    for (long i = 0; i < (long)ow * oh; i++) {
      int r = small[3 * i], g = small[3 * i + 1], b = small[3 * i + 2];
      int k = r > g ? (r > b ? r : b) : (g > b ? g : b);
      cmyk[4 * i + 0] = k ? (unsigned char)((255 * r + k / 2) / k) : 0;
      cmyk[4 * i + 1] = k ? (unsigned char)((255 * g + k / 2) / k) : 0;
      cmyk[4 * i + 2] = k ? (unsigned char)((255 * b + k / 2) / k) : 0;
      cmyk[4 * i + 3] = (unsigned char)k;
    }
    rc = tjCompress2(c, cmyk, ow, 0, oh, TJPF_CMYK, &out, &outSize, TJSAMP_444, quality, 0);
  } else {
    int sub = !strcmp(mode, "gray") ? TJSAMP_GRAY : TJSAMP_420;
    rc = tjCompress2(c, small, ow, 0, oh, TJPF_RGB, &out, &outSize, sub, quality, 0);
  }
  if (rc) { fprintf(stderr, "%s: %s\n", argv[3], tjGetErrorStr2(c)); return 1; }
  write_all(argv[3], out, outSize);
  printf("%s %dx%d -> %dx%d %s %lu bytes\n", argv[3], w, h, ow, oh, mode, outSize);
  return 0;
}
