/* edgegan.c: see edgegan.h. The steps and their order follow edgegan_runtime/latent.py and
 * generator.py (to_pixels) exactly; every intermediate is stored in a variable of the type the
 * specification names, so the compiler cannot keep it in a wider register. */
#include "edgegan.h"

#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* clang honours it; GCC does not know it: build with -ffp-contract=off */
#endif

#define EDGEGAN_GOLDEN UINT64_C(0x9E3779B97F4A7C15)
#define EDGEGAN_M1 UINT64_C(0xBF58476D1CE4E5B9)
#define EDGEGAN_M2 UINT64_C(0x94D049BB133111EB)

static const double EDGEGAN_PI = 3.141592653589793; /* numpy.pi, the double nearest to pi */

uint64_t edgegan_splitmix64(uint64_t seed, uint64_t k) {
    uint64_t x = seed + (k + 1) * EDGEGAN_GOLDEN;
    x = (x ^ (x >> 30)) * EDGEGAN_M1;
    x = (x ^ (x >> 27)) * EDGEGAN_M2;
    return x ^ (x >> 31);
}

static double edgegan_uniform(uint64_t seed, uint64_t k) {
    double top = (double)(edgegan_splitmix64(seed, k) >> 11); /* < 2**53: exact */
    double shifted = top + 0.5;
    return shifted * 0x1p-53;
}

/* Gaussian number j of the stream: pair j/2, cosine for even j, sine for odd j. */
static double edgegan_pair(uint64_t seed, uint64_t pair, int odd) {
    double u1 = edgegan_uniform(seed, 2 * pair);
    double u2 = edgegan_uniform(seed, 2 * pair + 1);
    double l = log(u1);
    double m = -2.0 * l;
    double r = sqrt(m);
    double t = 2.0 * EDGEGAN_PI;
    double a = t * u2;
    double g = odd ? sin(a) : cos(a);
    double rg = r * g;
    return rg;
}

void edgegan_latent_range(uint64_t seed, uint64_t first, size_t count, float *out) {
    size_t i;
    for (i = 0; i < count; i++) {
        uint64_t j = first + (uint64_t)i;
        double g = edgegan_pair(seed, j / 2, (int)(j & 1));
        out[i] = (float)g; /* round to nearest float32 */
    }
}

void edgegan_latent(uint64_t seed, size_t n, size_t dim, float *out) {
    edgegan_latent_range(seed, 0, n * dim, out);
}

static uint8_t pixel_of(float v) {
    float s = v + 1.0f;
    float p = s * 127.5f;
    float r = rintf(p); /* the current rounding mode: to nearest, ties to even */
    if (r != r)
        return 0; /* NaN */
    if (r <= 0.0f)
        return 0;
    if (r >= 255.0f)
        return 255;
    return (uint8_t)r;
}

void edgegan_to_pixels(const float *images, size_t n, size_t c, size_t h, size_t w, uint8_t *pixels) {
    size_t b, ch, y, x;
    for (b = 0; b < n; b++)
        for (ch = 0; ch < c; ch++)
            for (y = 0; y < h; y++)
                for (x = 0; x < w; x++)
                    pixels[((b * h + y) * w + x) * c + ch] = pixel_of(images[((b * c + ch) * h + y) * w + x]);
}

void edgegan_to_pixels_nhwc(const float *images, size_t count, uint8_t *pixels) {
    size_t i;
    for (i = 0; i < count; i++)
        pixels[i] = pixel_of(images[i]);
}

static float float_of(uint8_t p) {
    float q = (float)p / 127.5f; /* rounded to float32 before the subtraction, as numpy does */
    return q - 1.0f;
}

void edgegan_from_pixels(const uint8_t *pixels, size_t count, float *out) {
    size_t i;
    for (i = 0; i < count; i++)
        out[i] = float_of(pixels[i]);
}

void edgegan_pixels_to_nchw(const uint8_t *pixels, size_t n, size_t h, size_t w, size_t c, float *out) {
    size_t b, ch, y, x;
    for (b = 0; b < n; b++)
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++)
                for (ch = 0; ch < c; ch++)
                    out[((b * c + ch) * h + y) * w + x] = float_of(pixels[((b * h + y) * w + x) * c + ch]);
}

void edgegan_quantize_int8(const float *x, size_t count, float scale, int32_t zero_point, int8_t *q) {
    size_t i;
    for (i = 0; i < count; i++) {
        float v = x[i] / scale;
        float mag = floorf(fabsf(v) + 0.5f);
        float r = (v > 0.0f) ? mag : (v < 0.0f ? -mag : 0.0f);
        float z = r + (float)zero_point;
        if (z != z)
            z = 0.0f; /* NaN latents do not occur; keep the cast defined */
        if (z < -128.0f)
            z = -128.0f;
        if (z > 127.0f)
            z = 127.0f;
        q[i] = (int8_t)z;
    }
}

void edgegan_dequantize_int8(const int8_t *q, size_t count, float scale, int32_t zero_point, float *x) {
    size_t i;
    for (i = 0; i < count; i++) {
        float d = (float)q[i] - (float)zero_point;
        x[i] = d * scale;
    }
}

int edgegan_one_hot(const int64_t *labels, size_t n, size_t k, float *out) {
    size_t i, j;
    if (k == 0 && n > 0)
        return EDGEGAN_ERR_LABEL;
    for (i = 0; i < n; i++) /* every label checked before anything is written */
        if (labels[i] < 0 || (uint64_t)labels[i] >= (uint64_t)k)
            return EDGEGAN_ERR_LABEL;
    for (i = 0; i < n; i++)
        for (j = 0; j < k; j++)
            out[i * k + j] = (uint64_t)labels[i] == (uint64_t)j ? 1.0f : 0.0f;
    return EDGEGAN_OK;
}

/* ------------------------------------------------------------------ TFLite metadata (flatbuffer) */

/* Reads of a little-endian flatbuffer, each checked against the buffer's length; a failed check
 * sets *ok to 0 and returns 0, so one test at the end covers a whole chain of reads. */
typedef struct {
    const uint8_t *b;
    size_t n;
    int ok;
} edgegan_fb;

static uint32_t fb_u32(edgegan_fb *f, size_t pos) {
    if (!f->ok || pos > f->n || f->n - pos < 4) {
        f->ok = 0;
        return 0;
    }
    return (uint32_t)f->b[pos] | (uint32_t)f->b[pos + 1] << 8 | (uint32_t)f->b[pos + 2] << 16 |
           (uint32_t)f->b[pos + 3] << 24;
}

static uint16_t fb_u16(edgegan_fb *f, size_t pos) {
    if (!f->ok || pos > f->n || f->n - pos < 2) {
        f->ok = 0;
        return 0;
    }
    return (uint16_t)(f->b[pos] | f->b[pos + 1] << 8);
}

/* Position of the object an offset at `pos` points to. */
static size_t fb_deref(edgegan_fb *f, size_t pos) {
    uint32_t rel = fb_u32(f, pos);
    if (!f->ok || rel == 0 || rel >= f->n - pos) {
        f->ok = 0;
        return 0;
    }
    return pos + rel;
}

/* Position of field `slot` (vtable offset: 4, 6, 8, ...) of the table at `table`, or 0 if absent. */
static size_t fb_field(edgegan_fb *f, size_t table, unsigned slot) {
    int32_t soff = (int32_t)fb_u32(f, table);
    size_t vt;
    uint16_t vsize, tsize, off;
    if (!f->ok)
        return 0;
    if ((soff > 0 && (size_t)soff > table) || (soff < 0 && (size_t)(-(int64_t)soff) > f->n - table)) {
        f->ok = 0;
        return 0;
    }
    vt = (size_t)((int64_t)table - soff);
    vsize = fb_u16(f, vt);
    tsize = fb_u16(f, vt + 2);
    if (!f->ok || slot + 2 > vsize)
        return 0;
    off = fb_u16(f, vt + slot);
    if (!f->ok || off == 0)
        return 0;
    if (off >= tsize || tsize > f->n - table) {
        f->ok = 0;
        return 0;
    }
    return table + off;
}

/* A vector's element count and the position of its first element (elem bytes each). */
static size_t fb_vector(edgegan_fb *f, size_t field, size_t elem, uint32_t *count) {
    size_t v = fb_deref(f, field);
    uint32_t c = fb_u32(f, v);
    if (!f->ok || (size_t)c > (f->n - v - 4) / elem) {
        f->ok = 0;
        *count = 0;
        return 0;
    }
    *count = c;
    return v + 4;
}

const uint8_t *edgegan_tflite_metadata(const uint8_t *model, size_t len, const char *name, size_t *size) {
    edgegan_fb f;
    size_t root, mfield, bfield, meta, buffers, want = strlen(name);
    uint32_t nmeta, nbuf, i;
    f.b = model;
    f.n = len;
    f.ok = model != NULL && len >= 8 && memcmp(model + 4, "TFL3", 4) == 0;
    root = fb_deref(&f, 0);
    mfield = fb_field(&f, root, 16); /* Model.metadata */
    bfield = fb_field(&f, root, 12); /* Model.buffers */
    if (!f.ok || !mfield || !bfield)
        return NULL;
    meta = fb_vector(&f, mfield, 4, &nmeta);
    buffers = fb_vector(&f, bfield, 4, &nbuf);
    for (i = 0; f.ok && i < nmeta; i++) {
        size_t md = fb_deref(&f, meta + 4 * (size_t)i);
        size_t nfield = fb_field(&f, md, 4), ifield = fb_field(&f, md, 6);
        size_t str, buf, dfield, data;
        uint32_t slen, index, dlen;
        if (!f.ok || !nfield)
            continue;
        str = fb_vector(&f, nfield, 1, &slen);
        if (!f.ok || slen != want || memcmp(model + str, name, want) != 0)
            continue;
        index = ifield ? fb_u32(&f, ifield) : 0;
        if (!f.ok || index >= nbuf)
            return NULL;
        buf = fb_deref(&f, buffers + 4 * (size_t)index);
        dfield = fb_field(&f, buf, 4); /* Buffer.data; edgegan never writes the offset/size form */
        if (!f.ok || !dfield)
            return NULL;
        data = fb_vector(&f, dfield, 1, &dlen);
        if (!f.ok)
            return NULL;
        *size = dlen;
        return model + data;
    }
    return NULL;
}
