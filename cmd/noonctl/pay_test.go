package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	paypb "github.com/noonhq/noon/idl/gen/pay"
)

// TestPayArgs: bad arguments are refused before any connection.
func TestPayArgs(t *testing.T) {
	for _, args := range [][]string{nil, {"list"}, {"list", "a", "b"}, {"replay"}, {"replay", "a", "b"}, {"nope"}} {
		if err := cmdPay(context.Background(), opts{}, args, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "pay") {
			t.Errorf("pay %q: %v, want a usage error", args, err)
		}
	}
}

func TestPrintPurchases(t *testing.T) {
	var b bytes.Buffer
	err := printPurchases(&b, &paypb.ListReply{Purchases: []*paypb.Purchase{{ID: "7", Provider: "test", TransactionID: "tx", Product: "gems", Quantity: 1, State: "granted", Currencies: map[string]int64{"coins": 100}, Items: map[string]int64{"sword": 1}}}, NextCursor: "7"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"7", "tx", "granted", "coins=100,item:sword=1", "-cursor 7"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output %q lacks %q", b.String(), want)
		}
	}
}
