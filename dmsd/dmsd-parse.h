/* dmsd-parse: the parts of dmsd that read what a client sends, kept apart
 * from the server so that a fuzz target (fuzz/fuzz-dmsd-parse.c) can reach
 * them: gNMI paths to text and back, the image-folder confinement of the
 * File service and of Install versions, and the look at an
 * InstallRequest's field header that lets a transfer skip protobuf-c.
 *
 * Pure functions; safe from any thread. */
#ifndef DMSD_DMSD_PARSE_H
#define DMSD_DMSD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gnmi.pb-c.h"

/* "/a/b[k=v]/c" of prefix + path (PathElem names and keys, or the
 * deprecated element strings). In key values '\' and ']' are escaped with
 * '\', in names '/' is. false (buf holds a truncated text) if it does not
 * fit in size: a caller must not match a truncated path. */
bool dmsd_path_text(const Gnmi__Path *prefix, const Gnmi__Path *path, char *buf,
                    size_t size);

/* If text starts with head (e.g. "/interfaces/interface[name="), the key
 * value up to the first unescaped ']', unescaped into out; *rest points
 * after the ']'. false if text does not start so, the ']' is missing, the
 * value is empty or longer than size - 1. */
bool dmsd_path_key(const char *text, const char *head, char *out, size_t size,
                   const char **rest);

/* A version names a file directly in the image folder: not empty, no '/',
 * no leading '.', under 200 bytes. */
bool dmsd_version_ok(const char *v);

/* The file a File-service path names in folder, lexically: absolute paths
 * must lie under folder, relative ones are taken from it; no empty, "."
 * or ".." component and none starting with '.' (dmsd's own state is
 * .dmsd). A malloc'd "folder/relative", or NULL with why (naming the
 * path). Symbolic links are the caller's to check: this does not look at
 * the disk. */
char *dmsd_path_confine(const char *folder, const char *remote, char *why,
                        size_t size);

/* If a message of total bytes, whose first bytes are head[0..have), is
 * exactly one length-delimited field number `field` and nothing else, the
 * length of that field's tag and length header; 0 otherwise (then the
 * message must be unpacked by protobuf-c). have is at most 16 and need
 * only cover the header. */
size_t dmsd_bytes_field(const uint8_t *head, size_t have, size_t total,
                        unsigned field);

#endif
