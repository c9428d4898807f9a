// Command goplugin-echo is the go-plugin comparison of corral's call-latency
// bench: hashicorp go-plugin 1.0.1 serving a 64-byte echo over net/rpc
// (multiplexed on yamux over a Unix socket), one hop, one plugin process.
//
// Started by go-plugin (the magic cookie is in its environment) it is the
// plugin; started otherwise it is the client: it launches itself as the
// plugin, makes 2,000 untimed calls, then times N sequential calls (N from
// its first argument, else CORRAL_BENCH_CALLS, else 20,000) and prints one
// JSON line to stdout with nearest-rank percentiles in µs, the same way the
// Rust bench summarises its own rows. Scheduling (CPU affinity) is
// inherited from whoever starts it.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/rpc"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"syscall"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
)

const (
	messageLen   = 64
	warmup       = 2000
	defaultCalls = 20000
	pluginName   = "echo"
)

// handshake keeps the binary from serving when run by hand: go-plugin's
// Serve refuses to run without the cookie in the environment.
var handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "CORRAL_GOPLUGIN_ECHO",
	MagicCookieValue: "a1d3c9e0-corral-bench",
}

// Echoer is the plugin's interface.
type Echoer interface {
	Echo(message []byte) ([]byte, error)
}

// echo is the implementation served in the plugin process.
type echo struct{}

func (echo) Echo(message []byte) ([]byte, error) { return message, nil }

// echoRPCServer is the net/rpc face of an Echoer, in the plugin process.
type echoRPCServer struct{ impl Echoer }

// Echo answers the "Plugin.Echo" call.
func (s *echoRPCServer) Echo(message []byte, reply *[]byte) error {
	answer, err := s.impl.Echo(message)
	*reply = answer
	return err
}

// echoRPCClient is an Echoer in the client process that calls the plugin.
type echoRPCClient struct{ client *rpc.Client }

func (c *echoRPCClient) Echo(message []byte) ([]byte, error) {
	var reply []byte
	err := c.client.Call("Plugin.Echo", message, &reply)
	return reply, err
}

// echoPlugin tells go-plugin how to serve and dispense an Echoer.
type echoPlugin struct{ impl Echoer }

func (p *echoPlugin) Server(*plugin.MuxBroker) (interface{}, error) {
	return &echoRPCServer{impl: p.impl}, nil
}

func (*echoPlugin) Client(_ *plugin.MuxBroker, c *rpc.Client) (interface{}, error) {
	return &echoRPCClient{client: c}, nil
}

// quietLogger keeps go-plugin's trace logging (its default) off the
// measurement: only errors are written, to stderr.
func quietLogger() hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:   "goplugin-echo",
		Level:  hclog.Error,
		Output: os.Stderr,
	})
}

// result is the JSON line the client prints.
type result struct {
	P50Us     float64 `json:"p50_us"`
	P99Us     float64 `json:"p99_us"`
	MinUs     float64 `json:"min_us"`
	MeanUs    float64 `json:"mean_us"`
	CallsPerS float64 `json:"calls_per_s"`
	Calls     int     `json:"calls"`
}

func main() {
	if os.Getenv(handshake.MagicCookieKey) == handshake.MagicCookieValue {
		plugin.Serve(&plugin.ServeConfig{
			HandshakeConfig: handshake,
			Plugins:         map[string]plugin.Plugin{pluginName: &echoPlugin{impl: echo{}}},
			Logger:          quietLogger(),
		})
		return
	}
	calls, err := callCount()
	if err != nil {
		fail(err)
	}
	self, err := os.Executable()
	if err != nil {
		fail(fmt.Errorf("own path: %w", err))
	}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  handshake,
		Plugins:          map[string]plugin.Plugin{pluginName: &echoPlugin{}},
		Cmd:              exec.Command(self),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolNetRPC},
		Logger:           quietLogger(),
	})
	res, err := measure(client, calls)
	if err == nil {
		var line []byte
		if line, err = json.Marshal(res); err == nil {
			fmt.Println(string(line))
		}
	}
	if err != nil {
		client.Kill()
		fail(err)
	}
	quietKill(client)
}

// quietKill stops the plugin once the figures are out. go-plugin 1.0.1
// closes the yamux session while yamux's send loop may still be writing
// the streams' closing frames, and yamux then logs a spurious "[ERR] yamux:
// Failed to write header" to stderr now and then; nothing that follows
// matters to the figures, so stderr goes to /dev/null for it.
func quietKill(client *plugin.Client) {
	if devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		_ = syscall.Dup3(int(devNull.Fd()), 2, 0)
	}
	client.Kill()
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "goplugin-echo: %s\n", err)
	os.Exit(1)
}

// callCount is the positive count from the first argument, else from
// CORRAL_BENCH_CALLS, else the default.
func callCount() (int, error) {
	text, from := "", ""
	if len(os.Args) > 1 {
		text, from = os.Args[1], "argument"
	} else if env, ok := os.LookupEnv("CORRAL_BENCH_CALLS"); ok {
		text, from = env, "CORRAL_BENCH_CALLS"
	} else {
		return defaultCalls, nil
	}
	n, err := strconv.Atoi(text)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%s `%s` is not a positive count", from, text)
	}
	return n, nil
}

// measure starts the plugin, dispenses the echo and times it.
func measure(client *plugin.Client, calls int) (result, error) {
	protocol, err := client.Client()
	if err != nil {
		return result{}, fmt.Errorf("start the plugin: %w", err)
	}
	raw, err := protocol.Dispense(pluginName)
	if err != nil {
		return result{}, fmt.Errorf("dispense %s: %w", pluginName, err)
	}
	echoer, ok := raw.(Echoer)
	if !ok {
		return result{}, fmt.Errorf("dispensed %T, not an Echoer", raw)
	}

	message := make([]byte, messageLen)
	for i := range message {
		message[i] = byte(i)
	}
	call := func() error {
		reply, err := echoer.Echo(message)
		if err != nil {
			return fmt.Errorf("echo call: %w", err)
		}
		if !bytes.Equal(reply, message) {
			return fmt.Errorf("the plugin echoed something else (%d bytes)", len(reply))
		}
		return nil
	}
	for i := 0; i < warmup; i++ {
		if err := call(); err != nil {
			return result{}, err
		}
	}
	latencies := make([]time.Duration, 0, calls)
	start := time.Now()
	for i := 0; i < calls; i++ {
		sent := time.Now()
		if err := call(); err != nil {
			return result{}, err
		}
		latencies = append(latencies, time.Since(sent))
	}
	wall := time.Since(start)
	return summarise(latencies, wall), nil
}

// summarise gives nearest-rank percentiles, minimum and mean in µs, as
// corral_tests::bench::Summary does.
func summarise(latencies []time.Duration, wall time.Duration) result {
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	count := len(latencies)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	percentile := func(p int) float64 {
		rank := (count*p + 99) / 100
		if rank < 1 {
			rank = 1
		}
		return us(latencies[rank-1])
	}
	var total time.Duration
	for _, d := range latencies {
		total += d
	}
	return result{
		P50Us:     percentile(50),
		P99Us:     percentile(99),
		MinUs:     us(latencies[0]),
		MeanUs:    us(total) / float64(count),
		CallsPerS: float64(count) / wall.Seconds(),
		Calls:     count,
	}
}
