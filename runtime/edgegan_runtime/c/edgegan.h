/* edgegan.h: the latent sampler and the pixel rule of edgegan_runtime, for apps written in C, C++,
 * Kotlin (through JNI) or Swift (through a bridging header). One header, one source file (edgegan.c),
 * C99, no dependencies beyond libm.
 *
 * With the same model file, an app that feeds edgegan_latent() into the model and passes its output to
 * edgegan_to_pixels() gets the bytes that Python's `edgegan_runtime.load(f).generate(n, seed)` returns.
 * The specification is the module doc of edgegan_runtime/latent.py and generator.py; the TFLite file
 * names the versions it expects in its "edgegan.contract" metadata (sampler.name/version, pixels.name/
 * version); check them against the macros below.
 *
 * Build with IEEE float semantics: no -ffast-math, and -ffp-contract=off (GCC fuses a*b+c into one
 * FMA by default on ARM, which changes the last bit). Tested bit for bit against the Python runtime
 * by tests/runtime/test_runtime_c.py.
 */
#ifndef EDGEGAN_H
#define EDGEGAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EDGEGAN_SAMPLER "splitmix64-box-muller"
#define EDGEGAN_SAMPLER_VERSION 1
#define EDGEGAN_PIXELS "clip-rint-127.5"
#define EDGEGAN_PIXELS_VERSION 1

/* Output k (k = 0, 1, 2, ...) of the SplitMix64 stream started at seed. A negative Python seed s is
 * (uint64_t)(int64_t)s here (seeds are taken mod 2**64). */
uint64_t edgegan_splitmix64(uint64_t seed, uint64_t k);

/* Elements first .. first+count-1 of the standard-normal stream of `seed`, as float32.
 * Row i of a (n, dim) latent batch is elements i*dim .. i*dim+dim-1: image i depends only on (seed, i). */
void edgegan_latent_range(uint64_t seed, uint64_t first, size_t count, float *out);

/* latent(n, dim, seed): n*dim floats, row-major; equal to edgegan_runtime.latent(n, dim, seed). */
void edgegan_latent(uint64_t seed, size_t n, size_t dim, float *out);

/* uint8 pixels (n, h, w, c) from float images (n, c, h, w) in [-1, 1]:
 * clip(rint((x + 1) * 127.5), 0, 255) in float32, half to even; NaN -> 0. */
void edgegan_to_pixels(const float *images, size_t n, size_t c, size_t h, size_t w, uint8_t *pixels);

/* For static-int8 files (int8 input and output tensors; scale and zero point are in the file and in
 * the contract): q = clamp(round(x / scale) + zero_point), half away from zero, as TFLite's QUANTIZE;
 * and x = (q - zero_point) * scale. */
void edgegan_quantize_int8(const float *x, size_t count, float scale, int32_t zero_point, int8_t *q);
void edgegan_dequantize_int8(const int8_t *q, size_t count, float scale, int32_t zero_point, float *x);

/* Conditional (class-label) generators (issue 20). A conditional file has two inputs, in this order:
 * input 0, z, float32 (n, latent dim), as above; input 1, the class label as a float32 one-hot (n, k),
 * row i 1.0 at the class of image i and 0.0 elsewhere. Its contract (EDGEGAN_CONTRACT_METADATA) then has
 * a "label" entry: {"classes": k, "names": [...] or null, "form": "onehot", "dtype": "float32", "input": 1};
 * without one, the file is unconditional and has one input. In LiteRT the inputs are the signature's
 * args_0 (z) and args_1 (label); in ONNX, "z" and "label". The latents do not depend on the label: the
 * same seed gives the same z, so one image "style" across classes. In a static-int8 file the label input
 * is int8 too: quantize the one-hot with its own scale and zero point (edgegan_quantize_int8); edgegan's
 * exporter checks that 0 and 1 land on two of its levels exactly (scale 1/255, zero point -128).
 *
 * edgegan_one_hot writes the one-hot (n, k) of class indices labels[0..n-1] into out (n*k floats,
 * row-major): equal, bit for bit, to edgegan_runtime.one_hot(labels, k). Returns EDGEGAN_OK, or
 * EDGEGAN_ERR_LABEL (out untouched) when a label lies outside [0, k) or k is 0. */
#define EDGEGAN_OK 0
#define EDGEGAN_ERR_LABEL 1
int edgegan_one_hot(const int64_t *labels, size_t n, size_t k, float *out);

/* Image-to-image files (issue 21): the input is images in [-1, 1] made from 8-bit pixels by
 * EDGEGAN_IMAGE_PIXELS (x = float32(p) / 127.5 - 1, the quotient rounded to float32, then the difference),
 * in the file's layout: TFLite files are NHWC (a camera frame's own layout: no transpose), ONNX files NCHW.
 * The output is images in [-1, 1] in the same layout, to pixels by EDGEGAN_PIXELS.
 *
 * edgegan_from_pixels: count floats from count pixels, element by element (any layout; NHWC in, NHWC out).
 * edgegan_pixels_to_nchw: an NHWC pixel batch (n, h, w, c) to NCHW floats (n, c, h, w), for ONNX files.
 * edgegan_to_pixels_nhwc: count pixels from an NHWC float output (a TFLite file's), element by element;
 * edgegan_to_pixels above takes an NCHW output (an ONNX file's). Both equal edgegan_runtime's translate. */
#define EDGEGAN_IMAGE_PIXELS "u8-div-127.5-minus-1"
#define EDGEGAN_IMAGE_PIXELS_VERSION 1
void edgegan_from_pixels(const uint8_t *pixels, size_t count, float *out);
void edgegan_pixels_to_nchw(const uint8_t *pixels, size_t n, size_t h, size_t w, size_t c, float *out);
void edgegan_to_pixels_nhwc(const float *images, size_t count, uint8_t *pixels);

/* The bytes of the TFLite file's Model.metadata entry called `name` (edgegan writes its contract as
 * "edgegan.contract": UTF-8 JSON, see edgegan_runtime/contract.py), as a pointer into `model` with its
 * length in *size; NULL when there is no such entry or the file is malformed. Every offset is checked
 * against `len`, so a corrupt file cannot make it read outside `model`. No copy, no allocation. */
const uint8_t *edgegan_tflite_metadata(const uint8_t *model, size_t len, const char *name, size_t *size);

#define EDGEGAN_CONTRACT_METADATA "edgegan.contract"

#ifdef __cplusplus
}
#endif

#endif /* EDGEGAN_H */
