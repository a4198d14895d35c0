package catalogschema

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// configSchemaURL is the base URL a configuration schema is compiled under.
// The .invalid TLD (RFC 2606) guarantees relative references resolve to a
// name that can never be fetched, and LoadURL refuses them anyway.
const configSchemaURL = "https://service-config.invalid/schema.json"

// ValidateConfig checks config (the configuration an orchestrator would
// send when provisioning s) against s.ConfigurationSchema, a JSON Schema
// (draft 2020-12 unless the schema's $schema names another draft). An
// empty schema accepts everything; an empty config is treated as {}.
//
// The schema is compiled once and cached in s. Compilation never touches
// the network: any $ref outside the schema document fails with an error
// matching ErrBadConfigSchema and ErrRemoteRef. config is bounded by the
// default Limits. A config that does not conform yields a
// *ValidationError (matching ErrInvalidConfig) with pointers into config.
//
// Safe for concurrent use.
func (s *Service) ValidateConfig(config json.RawMessage) error {
	sch, err := s.configSchema()
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(config)) == 0 {
		config = json.RawMessage("{}")
	}
	v, err := decodeChecked(config, DefaultLimits(), docConfig)
	if err != nil {
		return err
	}
	if sch == nil {
		return nil
	}
	if err := sch.Validate(v); err != nil {
		return &ValidationError{Document: docConfig, Violations: sortViolations(schemaViolations(err))}
	}
	return nil
}

func (s *Service) configSchema() (*jsonschemaSchema, error) {
	c := &s.cfg
	c.once.Do(func() {
		raw := bytes.TrimSpace(s.ConfigurationSchema)
		if len(raw) == 0 || bytes.Equal(raw, []byte("null")) || bytes.Equal(raw, []byte("{}")) || bytes.Equal(raw, []byte("true")) {
			return // accepts everything
		}
		var refused string
		comp := newCompiler(&refused)
		if err := comp.AddResource(configSchemaURL, bytes.NewReader(raw)); err != nil {
			c.err = fmt.Errorf("%w: service %q: %v", ErrBadConfigSchema, s.ServiceID, err)
			return
		}
		sch, err := comp.Compile(configSchemaURL)
		switch {
		case refused != "":
			c.err = fmt.Errorf("%w: service %q: %w: %s", ErrBadConfigSchema, s.ServiceID, ErrRemoteRef, refused)
		case err != nil:
			c.err = fmt.Errorf("%w: service %q: %v", ErrBadConfigSchema, s.ServiceID, err)
		default:
			c.schema = sch
		}
	})
	return c.schema, c.err
}
