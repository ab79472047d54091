/* doca-error: names and descriptions of doca_error_t (doca_error.h). */
#include <doca_error.h>

#include <stddef.h>

struct doca_err_text {
    const char *name;
    const char *descr;
};

/* Indexed by the code. */
static const struct doca_err_text doca_err_texts[] = {
    {"DOCA_SUCCESS", "Success"},
    {"DOCA_ERROR_UNKNOWN", "Unknown error"},
    {"DOCA_ERROR_NOT_PERMITTED", "Operation not permitted"},
    {"DOCA_ERROR_IN_USE", "Resource in use"},
    {"DOCA_ERROR_NOT_SUPPORTED", "Operation not supported"},
    {"DOCA_ERROR_AGAIN", "Resource temporarily unavailable, try again"},
    {"DOCA_ERROR_INVALID_VALUE", "Invalid input"},
    {"DOCA_ERROR_NO_MEMORY", "Memory allocation failure"},
    {"DOCA_ERROR_INITIALIZATION", "Resource initialization failure"},
    {"DOCA_ERROR_TIME_OUT", "Timer expired waiting for resource"},
    {"DOCA_ERROR_SHUTDOWN", "Shut down in process or completed"},
    {"DOCA_ERROR_CONNECTION_RESET", "Connection reset by peer"},
    {"DOCA_ERROR_CONNECTION_ABORTED", "Connection aborted"},
    {"DOCA_ERROR_CONNECTION_INPROGRESS", "Connection in progress"},
    {"DOCA_ERROR_NOT_CONNECTED", "Not connected"},
    {"DOCA_ERROR_NO_LOCK", "Unable to acquire a lock"},
    {"DOCA_ERROR_NOT_FOUND", "Resource not found"},
    {"DOCA_ERROR_IO_FAILED", "Input/output operation failed"},
    {"DOCA_ERROR_BAD_STATE", "Bad state: call made in the wrong order"},
    {"DOCA_ERROR_UNSUPPORTED_VERSION", "Unsupported version"},
    {"DOCA_ERROR_OPERATING_SYSTEM", "Operating system call failure"},
    {"DOCA_ERROR_DRIVER", "Driver call failure"},
    {"DOCA_ERROR_UNEXPECTED", "Unexpected event or result"},
    {"DOCA_ERROR_ALREADY_EXIST", "Resource already exists"},
    {"DOCA_ERROR_FULL", "No more space"},
    {"DOCA_ERROR_EMPTY", "No entry is available"},
    {"DOCA_ERROR_IN_PROGRESS", "Operation in progress"},
    {"DOCA_ERROR_TOO_BIG", "Requested size is too big"},
    {"DOCA_ERROR_AUTHENTICATION", "Authentication failure"},
    {"DOCA_ERROR_BAD_CONFIG", "Configuration is not valid"},
    {"DOCA_ERROR_SKIPPED", "Operation was skipped"},
};

#define DOCA_N_ERRS (sizeof doca_err_texts / sizeof doca_err_texts[0])

const char *
doca_error_get_name(doca_error_t error)
{
    size_t i = (size_t) error;
    return i < DOCA_N_ERRS ? doca_err_texts[i].name : "DOCA_ERROR_UNKNOWN";
}

const char *
doca_error_get_descr(doca_error_t error)
{
    size_t i = (size_t) error;
    return i < DOCA_N_ERRS ? doca_err_texts[i].descr : "Unknown error";
}
