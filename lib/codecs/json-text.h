/* json-text: members of a JSON object read out of its text, and a member
 * inserted into it, without building a tree.
 *
 * The API server stores objects as JSON text and touches a few metadata
 * members on every write (labels for the index, owner references for the
 * garbage collector, resourceVersion for every answer and watch event).
 * Parsing the whole object for that was a fifth of the server's CPU, so
 * these functions walk the text once, tracking strings and nesting, and
 * stop at the member asked for. Written by hand: jansson has no partial
 * parse.
 *
 * The text is trusted to be JSON (the store's own, or checked by the
 * caller); on text that is not, the functions return "not found" or a
 * span that json_loadb() then refuses, never read outside [s, s + len). */
#ifndef DPF_CODECS_JSON_TEXT_H
#define DPF_CODECS_JSON_TEXT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dbuf;

/* The value of the member `name` of the object s holds (s starts with
 * the object, after optional whitespace): [*start, *end) in s. False when
 * s is not an object or has no such member. */
bool json_text_member(const char *s, size_t len, const char *name,
                      size_t *start, size_t *end);

/* The value at a path of n members parsed (a new reference): the member
 * path[0] of the object s holds, then member path[1] of that value, and
 * so on. NULL when a member is absent, a step is not an object, or the
 * value is not valid JSON. With path {"metadata", "labels"} only the
 * labels are parsed. */
json_t *json_text_load_path(const char *s, size_t len, const char *const *path,
                            size_t n);
/* The path and n arguments from a list of names:
 * json_text_load_path(s, len, JSON_TEXT_PATH("metadata", "labels")). */
#define JSON_TEXT_PATH(...)             \
    (const char *const[]){__VA_ARGS__}, \
        sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

/* Append s to b with member `key` of the object that is the value of s's
 * member obj_name set to `value` (JSON text): its value replaced when the
 * object has the member, else `"key":value` inserted as its first member.
 * key is written as given (no escaping). False, with b untouched, when
 * obj_name's value is not an object. */
bool json_text_set(struct dbuf *b, const char *s, size_t len,
                   const char *obj_name, const char *key, const char *value);

/* Append s to b with metadata.resourceVersion set to rv (a quoted decimal,
 * as the API sends it): json_text_set() on metadata, and when the object
 * has no metadata member, `"metadata":{"resourceVersion":"rv"}` inserted
 * as its first member. The one way the API server and its watch cache
 * put a revision into a stored text. False, with b untouched, when s is
 * not an object or its metadata is not one. */
bool json_text_set_rv(struct dbuf *b, const char *s, size_t len, int64_t rv);

#endif
