package webform_test

import (
	"fmt"

	"github.com/agentprov/agentprov/internal/webform"
)

func ExampleMoney() {
	fmt.Println(webform.Money(150, "USD"), webform.Money(-7, "eur"))
	// Output: $1.50 -0.07 EUR
}
