package safehttp_test

import (
	"errors"
	"fmt"
	"strings"

	"github.com/agentprov/agentprov/internal/safehttp"
)

func ExampleCheckURL() {
	for _, u := range []string{"https://cloud.example/catalog", "http://127.0.0.1:8080/catalog", "http://cloud.example/catalog"} {
		_, err := safehttp.CheckURL(u)
		fmt.Println(u, errors.Is(err, safehttp.ErrInsecureURL))
	}
	// Output:
	// https://cloud.example/catalog false
	// http://127.0.0.1:8080/catalog false
	// http://cloud.example/catalog true
}

func ExampleReadAll() {
	_, err := safehttp.ReadAll(strings.NewReader("0123456789"), 4)
	fmt.Println(errors.Is(err, safehttp.ErrTooLarge))
	b, _ := safehttp.ReadAll(strings.NewReader("0123"), 4)
	fmt.Println(string(b))
	// Output:
	// true
	// 0123
}
