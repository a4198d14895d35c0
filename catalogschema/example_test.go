package catalogschema_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/agentprov/agentprov/catalogschema"
)

func ExampleParseRef() {
	ref, err := catalogschema.ParseRef("cloudflare/registrar:domain")
	fmt.Println(ref.Provider, ref.Service, err)

	_, err = catalogschema.ParseRef("Cloudflare/registrar:domain")
	fmt.Println(errors.Is(err, catalogschema.ErrInvalidRef))
	fmt.Println(err)
	// Output:
	// cloudflare registrar:domain <nil>
	// true
	// catalogschema: invalid service ref "Cloudflare/registrar:domain": provider id must start with a lowercase letter or digit, not "C"
}

func ExampleParseCatalog() {
	doc := []byte(`{
	  "protocol_version": "0.1",
	  "provider_id": "acme",
	  "provider_name": "Acme",
	  "updated_at": "2026-06-01T00:00:00Z",
	  "services": [{
	    "service_id": "postgres",
	    "description": "Managed PostgreSQL",
	    "kind": "deployable",
	    "scope": "project",
	    "pricing": {"type": "paid", "component": null, "paid": null},
	    "prices": [
	      {"amount": 1900, "currency": "USD", "basis": "monthly"},
	      {"amount": 10, "currency": "USD", "basis": "metered", "unit": "gb_month", "max_amount": 5000}
	    ]
	  }]
	}`)
	c, err := catalogschema.ParseCatalog(doc, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	s := c.Service("postgres")
	worst, _ := s.WorstCaseMonthly("USD")
	fmt.Println(c.Ref(s), worst.Amount, worst.Currency, worst.Bounded)
	// Output:
	// acme/postgres 6900 USD true
}

func ExampleValidationError() {
	doc := []byte(`{
	  "protocol_version": "0.1",
	  "provider_id": "Acme",
	  "provider_name": "Acme",
	  "updated_at": "2026-06-01T00:00:00Z",
	  "services": [
	    {"service_id": "db", "description": "", "kind": "plan", "scope": "project", "pricing": {"type": "free"}},
	    {"service_id": "db", "description": "", "kind": "plan", "scope": "galaxy", "pricing": {"type": "free"},
	     "prices": [{"amount": 500, "currency": "usd", "basis": "monthly"}]}
	  ]
	}`)
	_, err := catalogschema.ParseCatalog(doc, nil)
	var ve *catalogschema.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Code())
		for _, v := range ve.Violations {
			fmt.Println(v.Pointer)
		}
	}
	// Output:
	// invalid_document
	// /provider_id
	// /services/1/prices/0/currency
	// /services/1/scope
	// /services/1/service_id
}

func ExampleService_ValidateConfig() {
	s := &catalogschema.Service{
		ServiceID: "registrar:domain",
		ConfigurationSchema: json.RawMessage(`{"type": "object", "required": ["domain_query"],
		  "properties": {"domain_query": {"type": "string", "minLength": 1}}}`),
	}
	fmt.Println(s.ValidateConfig(json.RawMessage(`{"domain_query": "example.com"}`)))
	err := s.ValidateConfig(json.RawMessage(`{"domain_query": 42}`))
	fmt.Println(errors.Is(err, catalogschema.ErrInvalidConfig), err.(*catalogschema.ValidationError).Pointers())
	// Output:
	// <nil>
	// true [/domain_query]
}
