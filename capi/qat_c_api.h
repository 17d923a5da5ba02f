/* libqat's stable C ABI.
 *
 * This header is pure C99 and the only interface other languages need.  It
 * grows with the pipeline stages; today it reports the library's version.
 *
 * Compile-time version: QAT_C_API_VERSION_{MAJOR,MINOR,PATCH}.
 * Run-time version:     qat_version(), the library actually loaded.
 */
#ifndef QAT_C_API_H_
#define QAT_C_API_H_

#if defined(QAT_STATIC_DEFINE)
#define QAT_C_API
#elif defined(_WIN32)
#define QAT_C_API __declspec(dllimport)
#else
#define QAT_C_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define QAT_C_API_VERSION_MAJOR 0
#define QAT_C_API_VERSION_MINOR 1
#define QAT_C_API_VERSION_PATCH 0

/* The loaded library's version as "MAJOR.MINOR.PATCH"; a static string that
 * the caller must not free.  Thread-safe. */
QAT_C_API const char* qat_version(void);

/* The FakeQuant kernel variant in use on this CPU ("avx2", "sse2" or
 * "scalar"); a static string.  Thread-safe. */
QAT_C_API const char* qat_kernel_variant(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* QAT_C_API_H_ */
