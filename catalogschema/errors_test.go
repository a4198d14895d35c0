package catalogschema_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentprov/agentprov/catalogschema"
)

func TestErrorTexts(t *testing.T) {
	var vs []catalogschema.Violation
	for i := 0; i < 7; i++ {
		vs = append(vs, catalogschema.Violation{Pointer: fmt.Sprintf("/services/%d/kind", i), Message: "bad"})
	}
	ve := &catalogschema.ValidationError{Document: "catalog", Violations: vs}
	msg := ve.Error()
	if !strings.HasPrefix(msg, `catalogschema: invalid catalog: "/services/0/kind": bad; `) || !strings.HasSuffix(msg, "; and 2 more") {
		t.Errorf("ValidationError text: %s", msg)
	}
	cases := []struct {
		err    catalogschema.ProtocolError
		text   string
		code   string
		status int
	}{
		{&catalogschema.LimitError{Limit: catalogschema.LimitBytes, Max: 10, Got: 11}, "bytes limit exceeded: 11 > 10", "document_too_large", 413},
		{&catalogschema.LimitError{Limit: catalogschema.LimitDepth, Max: 2, Got: 3}, "depth limit exceeded", "document_too_deep", 422},
		{&catalogschema.LimitError{Limit: catalogschema.LimitServices, Max: 2, Got: 3}, "services limit", "too_many_services", 422},
		{&catalogschema.LimitError{Limit: catalogschema.LimitStringLen, Max: 2, Got: 3}, "string_length limit", "string_too_long", 422},
		{&catalogschema.SyntaxError{Offset: 4, Err: fmt.Errorf("boom")}, "malformed JSON at offset 4: boom", "malformed_document", 400},
		{&catalogschema.RefError{Input: "x", Reason: "no '/'"}, `invalid service ref "x": no '/'`, "invalid_ref", 400},
	}
	for _, tc := range cases {
		if !strings.Contains(tc.err.Error(), tc.text) || tc.err.Code() != tc.code || tc.err.HTTPStatus() != tc.status {
			t.Errorf("%T: %q %s %d", tc.err, tc.err.Error(), tc.err.Code(), tc.err.HTTPStatus())
		}
	}
}
