/* doca_compat.h: the symbol-annotation macros DOCA headers use, for apps
 * built against dpf's doca-telemetry-exporter (libdts-exporter underneath).
 *
 * DOCA marks its young APIs "experimental" and makes apps opt in with
 * DOCA_ALLOW_EXPERIMENTAL_API; dpf's implementation of those functions is
 * ordinary, so the macros only carry visibility and, without the opt-in, a
 * deprecation warning as DOCA's do (an app that builds with DOCA builds
 * here with the same flags). */
#ifndef DOCA_COMPAT_H_
#define DOCA_COMPAT_H_

#define DOCA_EXPORTED __attribute__((visibility("default")))

#ifdef DOCA_ALLOW_EXPERIMENTAL_API
#define DOCA_EXPERIMENTAL DOCA_EXPORTED
#else
#define DOCA_EXPERIMENTAL                                          \
    __attribute__((deprecated("experimental DOCA API: build with " \
                              "-DDOCA_ALLOW_EXPERIMENTAL_API"))) DOCA_EXPORTED
#endif

#define DOCA_STABLE DOCA_EXPORTED

#endif
