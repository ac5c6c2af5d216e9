/*
 * Body inspection: what a Messages API request body prefix says about the
 * top-level "model", "stream", "max_tokens" and "metadata" keys. Types only.
 */
#ifndef REALMS_INSPECT_T_H
#define REALMS_INSPECT_T_H

#include <stddef.h>
#include <stdint.h>

#include <realms/limits.h>

/* Result of an inspection, as a whole. */
enum inspect_status {
	INSPECT_OK = 0,         /* prefix is a well-formed (possibly truncated) object */
	INSPECT_EMPTY,          /* zero bytes of body */
	INSPECT_NOT_OBJECT,     /* root is not a JSON object */
	INSPECT_INVALID,        /* malformed JSON in the bytes we have */
	INSPECT_DUPLICATE_KEY,  /* the same top-level key appears twice */
};

/* State of one top-level key. */
enum inspect_key_state {
	INSPECT_KEY_ABSENT = 0, /* not in the prefix, or its value is cut off */
	INSPECT_KEY_WRONG_TYPE, /* present with a value of another JSON type */
	INSPECT_KEY_PRESENT,    /* present with a complete value of the right type */
};

struct inspect_result {
	enum inspect_status status;
	int complete;                    /* the prefix held the whole body and all
	                                    of it was read (0 when INVALID) */

	/* The root's keys (OK and DUPLICATE_KEY): how many, and whether one
	 * is not a plain lowercase name [a-z0-9_]+ written without escapes.
	 * The verdict refuses such keys: providers that fold case or Unicode
	 * when they map keys would read them as another spelling of one. */
	size_t n_keys;
	int odd_key;

	enum inspect_key_state model_state;
	char model[INSPECT_MODEL_MAX + 1]; /* decoded, NUL-terminated (PRESENT) */
	size_t model_len;                /* decoded length in bytes */
	size_t model_off;                /* offset of the opening quote in the body */
	size_t model_tok_len;            /* length of the token, quotes included */
	int model_too_long;              /* PRESENT in JSON but > INSPECT_MODEL_MAX:
	                                    model_state is WRONG_TYPE then */

	enum inspect_key_state stream_state;
	int stream;                      /* the boolean, when PRESENT */

	/* max_tokens, PRESENT when a JSON integer that is not negative and fits
	 * 64 bits (another number, such as 1.5, -1 or 1e3, is WRONG_TYPE): the
	 * budget reserves cost from it. */
	enum inspect_key_state max_tokens_state;
	uint64_t max_tokens;

	/* metadata.user_id, decoded, when the "metadata" object is complete in
	 * the prefix and its user_id is a string of at most INSPECT_USER_ID_MAX
	 * bytes; user_id_len 0 otherwise. Claude Code puts its session id in
	 * it, which the scheduler uses for stickiness. */
	char user_id[INSPECT_USER_ID_MAX + 1];
	size_t user_id_len;
};

#endif /* REALMS_INSPECT_T_H */
