/*
 * JSON: the state of a strict push scanner over one document, what it
 * reports about the root container, and a set of decoded keys. Types only.
 */
#ifndef REALMS_JSON_T_H
#define REALMS_JSON_T_H

#include <stddef.h>
#include <stdint.h>

/* Nesting levels whose bits fit in the scanner itself; deeper documents
 * move the bit stack to the heap (one bit per open container). Claude Code
 * bodies nest about 10 deep, so nearly every scan allocates nothing. */
#define JSON_STACK_INLINE  32   /* bytes: 256 levels */

/* Flags of json_scan_init(). */
#define JSON_FL_UNICODE    0x01 /* strings must be well-formed Unicode: valid
                                   UTF-8 (no overlong forms, surrogates or code
                                   points past U+10FFFF) and \u escapes with
                                   paired surrogates. Without it, string bytes
                                   of 0x20 and up are taken as they are and a
                                   lone \uD800 passes, as RFC 8259's grammar
                                   allows. */

/* What a value is, from its first byte. */
enum json_type {
	JSON_T_NONE = 0,
	JSON_T_OBJECT,
	JSON_T_ARRAY,
	JSON_T_STRING,
	JSON_T_NUMBER,
	JSON_T_TRUE,
	JSON_T_FALSE,
	JSON_T_NULL,
};

/* What json_scan() stopped for. Only the root value and the members of the
 * root container (depth 1) are reported; deeper content is checked and
 * skipped. Spans are absolute offsets [start, end) in the bytes fed since
 * json_scan_init(), quotes and brackets included. */
enum json_ev_type {
	JSON_EV_NONE = 0,   /* every byte was consumed: feed more */
	JSON_EV_ROOT,       /* the root value starts at `start`, of `type` */
	JSON_EV_BEGIN,      /* a key (`key` set) or a value of the root container
	                       starts at `start`; value events carry `type` */
	JSON_EV_KEY,        /* a key of the root object is whole: [start, end),
	                       `esc` if it holds a backslash escape */
	JSON_EV_VALUE,      /* a value of the root container is whole: `type`,
	                       [start, end), `esc` for strings */
	JSON_EV_END,        /* the root value is whole: `type`, [start, end) */
};

/* The event's details; which event it is, json_scan() returns. */
struct json_ev {
	enum json_type type;
	uint64_t start;
	uint64_t end;
	int esc;
	int key;
};

/* Why a document is invalid. The offset (json_scanner.err_off) is that of the
 * offending byte. */
enum json_err {
	JSON_ERR_NONE = 0,
	JSON_ERR_VALUE,         /* no value starts with this byte */
	JSON_ERR_KEY,           /* a key in double quotes was expected */
	JSON_ERR_COLON,         /* ':' was expected after a key */
	JSON_ERR_OBJ_NEXT,      /* ',' or '}' was expected */
	JSON_ERR_ARR_NEXT,      /* ',' or ']' was expected */
	JSON_ERR_TRAILING,      /* a ',' right before '}' or ']' */
	JSON_ERR_NUMBER,        /* not the number grammar */
	JSON_ERR_LITERAL,       /* not true, false or null */
	JSON_ERR_CTL,           /* a raw byte below 0x20 in a string */
	JSON_ERR_ESCAPE,        /* a backslash not followed by "\/bfnrtu */
	JSON_ERR_UESCAPE,       /* \u not followed by four hex digits */
	JSON_ERR_SURROGATE,     /* an unpaired surrogate (JSON_FL_UNICODE) */
	JSON_ERR_UTF8,          /* invalid UTF-8 (JSON_FL_UNICODE) */
	JSON_ERR_AFTER,         /* more than whitespace after the root value */
	JSON_ERR_NOMEM,         /* the nesting stack could not grow */
};

/* What the bytes fed so far are, if the input ended there. */
enum json_status {
	JSON_COMPLETE = 0,      /* exactly one valid document, whitespace around */
	JSON_TRUNCATED,         /* a proper prefix of one: more bytes could
	                           complete it (no bytes at all included) */
	JSON_INVALID,           /* no continuation can make it valid */
};

/* Where a truncated document stopped (json_scan_cut()). */
enum json_cut {
	JSON_CUT_NONE = 0,      /* not truncated */
	JSON_CUT_VALUE,         /* a value must come: nothing yet, or after ':' or
	                           a ',' in an array */
	JSON_CUT_STRING,        /* inside a string (key or value) */
	JSON_CUT_SCALAR,        /* inside, or right after, a number or literal */
	JSON_CUT_CONTAINER,     /* between the tokens of an open container */
};

/* Grammar state: what may come next. */
enum json_st {
	JSON_ST_VALUE = 0,      /* a value: the root, or after ':' */
	JSON_ST_ARR_FIRST,      /* after '[': a value or ']' */
	JSON_ST_ARR_NEXT,       /* after ',' in an array: a value */
	JSON_ST_OBJ_FIRST,      /* after '{': a key or '}' */
	JSON_ST_KEY,            /* after ',' in an object: a key */
	JSON_ST_COLON,          /* after a key: ':' */
	JSON_ST_AFTER,          /* after a value in a container: ',' or its
	                           closing bracket */
	JSON_ST_DONE,           /* after the root value: whitespace only */
	JSON_ST_STRING,         /* inside a string */
	JSON_ST_NUMBER,         /* inside a number */
	JSON_ST_LITERAL,        /* inside true, false or null */
	JSON_ST_ERROR,          /* sticky */
};

/* The scanner. Caller-owned, any storage; json_scan_init() prepares it and
 * json_scan_release() frees the heap stack a deep document made it take.
 * Fields are read through json.h; the layout is here so that it can live
 * on the stack or inside another struct. */
struct json_scanner {
	unsigned int flags;          /* JSON_FL_* */
	enum json_st st;
	uint64_t off;                /* absolute offset of the next byte */

	/* Open containers: one bit each, 1 for an object. */
	size_t depth;
	size_t depth_max;            /* deepest nesting seen */
	unsigned char *heap;         /* the bits once past JSON_STACK_INLINE */
	size_t heap_size;            /* bytes at heap */
	unsigned char bits[JSON_STACK_INLINE];

	/* The string, number or literal being read. */
	uint64_t tok_start;          /* its first byte */
	unsigned char sub;           /* state inside it, see json.c */
	unsigned char lit;           /* which literal (JSON_ST_LITERAL) */
	unsigned char tok_key;       /* the string is a key */
	unsigned char tok_esc;       /* the string holds an escape */
	unsigned char surr;          /* reading the \u after a high surrogate */
	unsigned char hex_n;         /* hex digits read of a \u escape */
	unsigned char u8_need;       /* UTF-8 continuation bytes still due */
	unsigned char u8_lo, u8_hi;  /* range of the next continuation byte */
	unsigned int cp;             /* the \u code unit read so far */

	/* The root value, and the member of the root container being read. */
	uint64_t root_start;
	enum json_type root_type;
	uint64_t mem_start;
	enum json_type mem_type;
	int begun;                   /* ROOT or BEGIN was reported for the byte
	                                at `off`: do not report it again */

	enum json_err err;
	uint64_t err_off;
};

/* One member of a container, as json_each() hands it over. Pointers are
 * into the caller's buffer; tokens include their quotes. */
struct json_member {
	const char *key;             /* object key token, NULL in an array */
	size_t key_len;
	int key_esc;                 /* the key holds an escape */
	enum json_type type;
	const char *val;             /* the value's bytes, whole */
	size_t val_len;
	int val_esc;                 /* a string value holds an escape */
};

/* A set of keys compared after unescaping, to find a key given twice. */
struct json_key_ref {
	size_t off;                  /* decoded bytes at json_keys.bytes + off */
	size_t len;
	const char *p;               /* set when the set is sorted */
};

struct json_keys {
	struct json_key_ref *key;
	size_t n, size;              /* keys in use, allocated */
	char *bytes;                 /* every decoded key, back to back */
	size_t bytes_len, bytes_size;
};

#endif /* REALMS_JSON_T_H */
