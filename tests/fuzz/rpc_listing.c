/* tests/fuzz/rpc_listing.c - the records a guest sends back for `list_files` (the agent's
 * EXF_FILEOP "list": u16 name length, name, u64 size, u32 mode, i64 mtime per entry), decoded
 * by rpc_listing_decode into the protocol's JSON. Any crash, leak, or a result that is not a
 * JSON array of valid strings is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "rpc/exec_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *files = rpc_listing_decode(data, size);
	if (files) {
		if (!json_is_array(files))
			abort();
		char *s = json_dumps(files, 0); /* every name must be valid UTF-8 to dump */
		if (!s)
			abort();
		free(s);
	}
	json_decref(files);
	return 0;
}
