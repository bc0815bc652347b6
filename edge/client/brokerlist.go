package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
)

// MaxBrokerListBytes bounds the BrokerList body FetchBrokerList reads, 1 MiB:
// a list of a thousand brokers is about 40 KiB.
const MaxBrokerListBytes = 1 << 20

// brokerList is the BrokerList document:
//
//	{"version":"0.1.0","brokerList":{"host:port":0.067,"host:port":0.0418}}
type brokerList struct {
	Version    string             `json:"version"`
	BrokerList map[string]float64 `json:"brokerList"`
}

// FetchBrokerList gets the BrokerList from url (the broker-list endpoint,
// e.g. "http://host:1050/brokerlist") and returns each broker's address
// mapped to its load (lower is better).
func FetchBrokerList(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("client: broker list: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: broker list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("client: broker list %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBrokerListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("client: broker list %s: %w", url, err)
	}
	if len(body) > MaxBrokerListBytes {
		return nil, fmt.Errorf("client: broker list %s: body over %d bytes", url, MaxBrokerListBytes)
	}
	var doc brokerList
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("client: broker list %s: %w", url, err)
	}
	if doc.BrokerList == nil {
		return nil, fmt.Errorf("client: broker list %s: no \"brokerList\" in the document", url)
	}
	return doc.BrokerList, nil
}

// PickBroker returns the address with the lowest load (ties go to the
// smallest address, so the choice is stable). It returns ErrNoBrokers for an
// empty list.
func PickBroker(list map[string]float64) (string, error) {
	best, bestLoad := "", math.Inf(1)
	for addr, load := range list {
		if math.IsNaN(load) {
			continue
		}
		if best == "" || load < bestLoad || (load == bestLoad && addr < best) {
			best, bestLoad = addr, load
		}
	}
	if best == "" {
		return "", ErrNoBrokers
	}
	return best, nil
}
