// mpo-oidc: the sandbox's OpenID Connect provider and its two clients.
//
//	mpo-oidc serve      the example OP of github.com/zitadel/oidc/v3 over TLS, with short
//	                    id-token lifetimes, rotating refresh tokens (the example storage
//	                    rotates them) and test controls under /test/
//	mpo-oidc login      the authorization-code login a kubeconfig generator performs
//	                    (dex-k8s-authenticator in Deckhouse's user-authn); prints the tokens
//	mpo-oidc get-token  an exec credential plugin in the style of kubelogin's
//	                    `oidc-login get-token`, with a token cache file
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mpo-oidc serve|login|get-token [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "login":
		err = login(os.Args[2:])
	case "get-token":
		err = getToken(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mpo-oidc %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// --- serve ------------------------------------------------------------------------

// shortLivedStorage is the example storage with every client's id-token lifetime
// replaced, so that tests see tokens expire within seconds.
type shortLivedStorage struct {
	*storage.Storage
	idTokenLifetime time.Duration
}

type shortLivedClient struct {
	op.Client
	lifetime time.Duration
}

func (c shortLivedClient) IDTokenLifetime() time.Duration { return c.lifetime }

func (s shortLivedStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	client, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return shortLivedClient{Client: client, lifetime: s.idTokenLifetime}, nil
}

// controls: refresh tokens whose token request is held back (to interrupt a client
// mid-refresh) and counters the tests read.
type controls struct {
	mu        sync.Mutex
	slow      map[string]time.Duration
	arrived   map[string]bool
	refreshes atomic.Int64
}

func (c *controls) tokenMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth/token" && r.Method == http.MethodPost {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "cannot read body", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			if form.Get("grant_type") == "refresh_token" {
				c.refreshes.Add(1)
				token := form.Get("refresh_token")
				c.mu.Lock()
				delay, slow := c.slow[token]
				if slow {
					c.arrived[token] = true
				}
				c.mu.Unlock()
				if slow {
					// The provider has not looked at the token yet: it rotates it only
					// after the delay, whether or not the client is still there.
					time.Sleep(delay)
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (c *controls) routes(mux *http.ServeMux) {
	// POST /test/slow refresh_token=...&seconds=N holds that token's refresh for N s.
	mux.HandleFunc("/test/slow", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		seconds, err := time.ParseDuration(r.PostForm.Get("seconds") + "s")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		c.slow[r.PostForm.Get("refresh_token")] = seconds
		c.mu.Unlock()
	})
	// GET /test/arrived?refresh_token=... says whether a held-back refresh has started.
	mux.HandleFunc("/test/arrived", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		arrived := c.arrived[r.URL.Query().Get("refresh_token")]
		c.mu.Unlock()
		fmt.Fprintf(w, "%v", arrived)
	})
	mux.HandleFunc("/test/refreshes", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d", c.refreshes.Load())
	})
}

func serve(args []string) error {
	flags := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := flags.String("listen", "127.0.0.1:0", "address")
	issuer := flags.String("issuer", "", "issuer URL (https://127.0.0.1:PORT)")
	cert := flags.String("cert", "", "TLS certificate")
	key := flags.String("key", "", "TLS key")
	users := flags.String("users", "", "users JSON file (example storage format)")
	clientID := flags.String("client-id", "kubeconfig-generator", "client id")
	secretFile := flags.String("client-secret-file", "", "file holding the client secret")
	redirect := flags.String("redirect-uri", "http://127.0.0.1/callback", "redirect URI of the client")
	lifetime := flags.Duration("id-token-lifetime", 20*time.Second, "id-token lifetime")
	flags.Parse(args)

	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		return err
	}
	storage.RegisterClients(storage.WebClient(*clientID, strings.TrimSpace(string(secret)), *redirect))
	userStore, err := storage.StoreFromFile(*users)
	if err != nil {
		return err
	}
	store := shortLivedStorage{Storage: storage.NewStorage(userStore), idTokenLifetime: *lifetime}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	router := exampleop.SetupServer(strings.TrimSuffix(*issuer, "/"), store, logger, false)

	ctl := &controls{slow: map[string]time.Duration{}, arrived: map[string]bool{}}
	mux := http.NewServeMux()
	ctl.routes(mux)
	mux.Handle("/", ctl.tokenMiddleware(router))
	server := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(os.Stderr, "serving %s on %s\n", *issuer, *listen)
	return server.ListenAndServeTLS(*cert, *key)
}

// --- login ------------------------------------------------------------------------

type tokens struct {
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
}

func httpClient(caFile string) (*http.Client, error) {
	pool := x509.NewCertPool()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool.AppendCertsFromPEM(pem)
	}
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}, nil
}

func discover(client *http.Client, issuer string) (map[string]any, error) {
	resp, err := client.Get(strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, err
	}
	return doc, nil
}

func tokenRequest(client *http.Client, endpoint, clientID, secret string, form url.Values) (*tokens, error) {
	req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		var problem struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &problem)
		return nil, fmt.Errorf("token endpoint answered %d %s", resp.StatusCode, problem.Error)
	}
	var result tokens
	if err := json.Unmarshal(body, &result); err != nil {
		return nil, err
	}
	if result.IDToken == "" {
		return nil, errors.New("no id_token in the token response")
	}
	return &result, nil
}

func login(args []string) error {
	flags := flag.NewFlagSet("login", flag.ExitOnError)
	issuer := flags.String("issuer", "", "issuer URL")
	ca := flags.String("ca", "", "CA file")
	clientID := flags.String("client-id", "kubeconfig-generator", "client id")
	secretFile := flags.String("client-secret-file", "", "client secret file")
	redirect := flags.String("redirect-uri", "http://127.0.0.1/callback", "redirect URI")
	username := flags.String("username", "", "user")
	passwordFile := flags.String("password-file", "", "password file")
	kubeconfigOut := flags.String("kubeconfig-out", "", "write a kubeconfig as Deckhouse's kubeconfig generator does")
	server := flags.String("server", "", "API server URL for the kubeconfig")
	clusterCA := flags.String("cluster-ca", "", "API server CA file for the kubeconfig")
	userName := flags.String("user-name", "", "kubeconfig user and context name")
	cacheOut := flags.String("token-cache-out", "", "write the tokens as get-token's cache file")
	flags.Parse(args)
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		return err
	}
	password, err := os.ReadFile(*passwordFile)
	if err != nil {
		return err
	}
	client, err := httpClient(*ca)
	if err != nil {
		return err
	}
	jar, _ := cookiejar.New(nil)
	client.Jar = jar
	// Follow the provider's own redirects (to its login page and back), stop at the
	// client's redirect URI, which carries the code.
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), *redirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	doc, err := discover(client, *issuer)
	if err != nil {
		return err
	}
	authEndpoint, _ := doc["authorization_endpoint"].(string)
	tokenEndpoint, _ := doc["token_endpoint"].(string)
	query := url.Values{
		"client_id":     {*clientID},
		"redirect_uri":  {*redirect},
		"response_type": {"code"},
		"scope":         {"openid offline_access profile email groups"},
		"state":         {"mpo-sandbox"},
	}
	resp, err := client.Get(authEndpoint + "?" + query.Encode())
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// The login page: /login/username?authRequestID=ID
	authRequestID := resp.Request.URL.Query().Get("authRequestID")
	if authRequestID == "" {
		return fmt.Errorf("no login page after %s (status %d)", authEndpoint, resp.StatusCode)
	}
	loginURL := resp.Request.URL.Scheme + "://" + resp.Request.URL.Host + resp.Request.URL.Path
	resp, err = client.PostForm(loginURL, url.Values{
		"username": {*username},
		"password": {strings.TrimSpace(string(password))},
		"id":       {authRequestID},
	})
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	location, err := resp.Location()
	if err != nil {
		return fmt.Errorf("login refused (status %d)", resp.StatusCode)
	}
	code := location.Query().Get("code")
	if code == "" {
		return fmt.Errorf("no code in the redirect")
	}
	result, err := tokenRequest(client, tokenEndpoint, *clientID, strings.TrimSpace(string(secret)), url.Values{
		"grant_type":   {"authorization_code"},
		"code":         {code},
		"redirect_uri": {*redirect},
	})
	if err != nil {
		return err
	}
	if *cacheOut != "" {
		encoded, _ := json.Marshal(result)
		if err := os.WriteFile(*cacheOut, encoded, 0o600); err != nil {
			return err
		}
	}
	if *kubeconfigOut != "" {
		return writeGeneratorKubeconfig(*kubeconfigOut, *server, *clusterCA, *userName, *issuer, *ca, *clientID, strings.TrimSpace(string(secret)), result)
	}
	return nil
}

// writeGeneratorKubeconfig writes what the kubeconfig generator of Deckhouse's
// user-authn (dex-k8s-authenticator) hands out: an oidc auth-provider user with the
// provider's CA inline.
func writeGeneratorKubeconfig(path, server, clusterCA, name, issuer, idpCA, clientID, secret string, t *tokens) error {
	clusterPEM, err := os.ReadFile(clusterCA)
	if err != nil {
		return err
	}
	idpPEM, err := os.ReadFile(idpCA)
	if err != nil {
		return err
	}
	b64 := base64.StdEncoding.EncodeToString
	text := fmt.Sprintf(`apiVersion: v1
kind: Config
preferences: {}
# Generated by the sandbox's kubeconfig generator (as dex-k8s-authenticator does).
clusters:
- name: sandbox-oidc
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    auth-provider:
      name: oidc
      config:
        idp-issuer-url: %s
        client-id: %s
        client-secret: %s
        id-token: %s
        refresh-token: %s
        idp-certificate-authority-data: %s
contexts:
- name: %s
  context:
    cluster: sandbox-oidc
    user: %s
current-context: %s
`, server, b64(clusterPEM), name, issuer, clientID, secret, t.IDToken, t.RefreshToken, b64(idpPEM), name, name, name)
	return os.WriteFile(path, []byte(text), 0o600)
}

// --- get-token ----------------------------------------------------------------------

func expiry(idToken string) (time.Time, error) {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return time.Time{}, errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, err
	}
	var claims struct {
		Exp int64 `json:"exp"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return time.Time{}, err
	}
	return time.Unix(claims.Exp, 0), nil
}

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

func getToken(args []string) error {
	flags := flag.NewFlagSet("get-token", flag.ExitOnError)
	issuer := flags.String("oidc-issuer-url", "", "issuer URL")
	clientID := flags.String("oidc-client-id", "", "client id")
	secretFile := flags.String("oidc-client-secret-file", "", "client secret file")
	ca := flags.String("certificate-authority", "", "CA file of the provider")
	cache := flags.String("token-cache", "", "token cache file (JSON id_token, refresh_token)")
	requireCluster := flags.Bool("require-cluster-info", false, "fail unless KUBERNETES_EXEC_INFO carries spec.cluster")
	confirm := flags.Bool("confirm-on-terminal", false, "ask the user to press Enter (needs a terminal)")
	flags.Parse(args)

	var info struct {
		APIVersion string `json:"apiVersion"`
		Spec       struct {
			Interactive bool `json:"interactive"`
			Cluster     *struct {
				Server string `json:"server"`
			} `json:"cluster"`
		} `json:"spec"`
	}
	if raw := os.Getenv("KUBERNETES_EXEC_INFO"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &info); err != nil {
			return fmt.Errorf("KUBERNETES_EXEC_INFO: %v", err)
		}
	}
	if info.APIVersion == "" {
		info.APIVersion = "client.authentication.k8s.io/v1"
	}
	if *requireCluster && (info.Spec.Cluster == nil || info.Spec.Cluster.Server == "") {
		return errors.New("no cluster in KUBERNETES_EXEC_INFO (provideClusterInfo is off?)")
	}
	if *confirm {
		if !info.Spec.Interactive || !isTerminal(os.Stdin) {
			return errors.New("a terminal is needed to confirm the login")
		}
		fmt.Fprint(os.Stderr, "Press Enter to log in to the sandbox: ")
		line := make([]byte, 1)
		if _, err := os.Stdin.Read(line); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "\nlogged in for %s\n", info.Spec.Cluster.Server)
	}
	raw, err := os.ReadFile(*cache)
	if err != nil {
		return fmt.Errorf("no cached login: %v", err)
	}
	var cached tokens
	if err := json.Unmarshal(raw, &cached); err != nil {
		return fmt.Errorf("token cache: %v", err)
	}
	exp, err := expiry(cached.IDToken)
	if err != nil || time.Now().Add(10*time.Second).After(exp) {
		secret, err := os.ReadFile(*secretFile)
		if err != nil {
			return err
		}
		client, err := httpClient(*ca)
		if err != nil {
			return err
		}
		doc, err := discover(client, *issuer)
		if err != nil {
			return err
		}
		endpoint, _ := doc["token_endpoint"].(string)
		fresh, err := tokenRequest(client, endpoint, *clientID, strings.TrimSpace(string(secret)), url.Values{
			"grant_type":    {"refresh_token"},
			"refresh_token": {cached.RefreshToken},
		})
		if err != nil {
			return fmt.Errorf("refreshing the login: %v", err)
		}
		if fresh.RefreshToken == "" {
			fresh.RefreshToken = cached.RefreshToken
		}
		cached = *fresh
		encoded, _ := json.Marshal(cached)
		tmp := *cache + ".tmp"
		if err := os.WriteFile(tmp, encoded, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, *cache); err != nil {
			return err
		}
		exp, err = expiry(cached.IDToken)
		if err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"apiVersion": info.APIVersion,
		"kind":       "ExecCredential",
		"status": map[string]any{
			"token":               cached.IDToken,
			"expirationTimestamp": exp.UTC().Format(time.RFC3339),
		},
	})
}
