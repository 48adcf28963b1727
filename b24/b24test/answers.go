package b24test

import (
	"encoding/json"
	"net/http"
)

// Error descriptions the portal answers, worded as the real portal words
// them (the method pages in the project's seeds/). A client recognises a
// permanent validation failure of department.add by its ERROR_CORE
// description: DescNoName, DescTwoRoots and DescNoParent are validation
// messages; DescHeadFailed and DescDeadlock are not (retry, after a lookup
// for DescHeadFailed, since the department was saved).
const (
	// DescNoName: department.add without NAME (ERROR_CORE).
	DescNoName = "Не введено название раздела.<br>"
	// DescTwoRoots: department.add without PARENT, or PARENT 0 or empty:
	// every portal already has its one top-level department (ERROR_CORE).
	DescTwoRoots = "В структуре компании должен быть только один раздел верхнего уровня"
	// DescNoParent: department.add with a PARENT that does not exist
	// (ERROR_CORE).
	DescNoParent = "Parent department not found"
	// DescHeadFailed: department.add saved the department but could not
	// set its UF_HEAD (ERROR_CORE; the department exists).
	DescHeadFailed = "Не удалось назначить руководителя подразделения"
	// DescDeadlock: a database error wrapped in ERROR_CORE; nothing saved.
	DescDeadlock = "Mysql query error: (1213) Deadlock found when trying to get lock; try restarting transaction"
	// DescNoTitle: crm.automatedsolution.add without a title
	// (BX_EMPTY_REQUIRED).
	DescNoTitle = "Не заполнено обязательное поле «Название»"
	// DescCapExceeded: crm.automatedsolution.add beyond the plan's cap
	// (LIMIT_EXCEEDED).
	DescCapExceeded = "Превышено количество доступных цифровых рабочих мест"
)

// apiError is an error answer.
type apiError struct {
	status int
	code   string
	desc   string
}

func (e *apiError) body() map[string]any {
	return map[string]any{"error": e.code, "error_description": e.desc}
}

var (
	errQueryLimit  = &apiError{http.StatusServiceUnavailable, "QUERY_LIMIT_EXCEEDED", "Too many requests"}
	errOperating   = &apiError{http.StatusTooManyRequests, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit"}
	errNoAuth      = &apiError{http.StatusUnauthorized, "NO_AUTH_FOUND", "Wrong authorization data"}
	errExpired     = &apiError{http.StatusUnauthorized, "expired_token", "The access token provided has expired."}
	errInvalidTok  = &apiError{http.StatusUnauthorized, "invalid_token", "The access token provided is invalid."}
	errInternal    = &apiError{http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "Internal server error"}
	errNotFound    = &apiError{http.StatusNotFound, "ERROR_METHOD_NOT_FOUND", "Method not found!"}
	errBatchLength = &apiError{http.StatusBadRequest, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded"}
	errBatchNested = &apiError{http.StatusMethodNotAllowed, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"}
	errBadRequest  = &apiError{http.StatusBadRequest, "INVALID_REQUEST", "Request body cannot be decoded"}
	errAccess      = &apiError{http.StatusForbidden, "ACCESS_DENIED", "Access denied"}
	// The token endpoint's errors.
	errBadGrant     = &apiError{http.StatusBadRequest, "invalid_grant", "Invalid refresh token"}
	errBadClient    = &apiError{http.StatusUnauthorized, "invalid_client", "Invalid client credentials"}
	errUnknownGrant = &apiError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be refresh_token"}
	errTokenRequest = &apiError{http.StatusBadRequest, "invalid_request", "cannot decode request"}
	errDeadlock     = coreError(DescDeadlock)
	errHeadFailed   = coreError(DescHeadFailed)
)

func coreError(desc string) *apiError {
	return &apiError{http.StatusBadRequest, "ERROR_CORE", desc}
}

// echoError is the error of the EchoURLRate fault: its description carries
// url, credentials included.
func echoError(url string) *apiError {
	return &apiError{http.StatusInternalServerError, "INTERNAL_SERVER_ERROR", "Method failed at " + url}
}

func writeError(w http.ResponseWriter, e *apiError) int {
	return writeJSON(w, e.status, e.body())
}

func writeJSON(w http.ResponseWriter, status int, body any) int {
	b, err := json.Marshal(body)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errInternal.body())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return status
}

// dropConnection closes the connection without an answer, like a portal
// whose response is lost after it did the work.
func dropConnection(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // HTTP/2 and wrappers: abort the stream
}
