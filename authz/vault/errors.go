package vault

import (
	"fmt"

	"github.com/agentprov/agentprov/authz"
)

// errorf returns a fresh *authz.Error carrying sentinel's code and status.
func errorf(sentinel *authz.Error, cause error, format string, args ...any) *authz.Error {
	return &authz.Error{Code: sentinel.Code, Status: sentinel.Status, Detail: fmt.Sprintf(format, args...), Err: cause}
}
