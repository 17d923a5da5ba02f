// QAT_API marks the symbols that libqat's shared library exports.  Everything
// else is hidden (the library builds with -fvisibility=hidden).
#ifndef QAT_API_H_
#define QAT_API_H_

#if defined(QAT_STATIC_DEFINE)
#define QAT_API
#elif defined(_WIN32)
#if defined(QAT_BUILDING_LIBRARY)
#define QAT_API __declspec(dllexport)
#else
#define QAT_API __declspec(dllimport)
#endif
#else
#define QAT_API __attribute__((visibility("default")))
#endif

#endif  // QAT_API_H_
