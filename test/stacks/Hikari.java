// HikariCP (2.7 in Debian 12) with pgjdbc, driven by test/t/123_stacks.pl through stdin/stdout
// (the protocol of harness.py).  Guide: minimumIdle at or below the policy's floor (0 under an
// idle_timeout, or the policy's min_idle), idleTimeout >= 10 s (2.x raises anything shorter to
// 10 minutes), maximumPoolSize set explicitly.  Without it: HikariCP's defaults (minimumIdle =
// maximumPoolSize), the pool that refills whatever the server ends.
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class Hikari {
    public static void main(String[] args) throws Exception {
        int workers = Integer.parseInt(System.getenv().getOrDefault("WORKERS", "8"));
        int burst = Integer.parseInt(System.getenv().getOrDefault("BURST", "24"));
        boolean guide = "1".equals(System.getenv().getOrDefault("GUIDE", "1"));
        String minIdle = System.getenv().getOrDefault("MIN_IDLE", "0");
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(System.getenv("STACK_JDBC_URL"));
        config.setUsername(System.getenv("STACK_USER"));
        config.setMaximumPoolSize(workers);
        if (guide) {
            config.setMinimumIdle(Integer.parseInt(minIdle));
            config.setIdleTimeout(10000);
        }
        HikariDataSource ds = new HikariDataSource(config);
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        Set<String> shown = new HashSet<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String cmd = line.trim();
            if (cmd.equals("quit"))
                break;
            int n = cmd.equals("burst") ? burst : 1;
            List<Future<String>> results = new ArrayList<>();
            for (int i = 0; i < n; i++)
                results.add(pool.submit(() -> {
                    try (Connection c = ds.getConnection(); Statement s = c.createStatement();
                         ResultSet r = s.executeQuery("SELECT 1")) {
                        r.next();
                        return null;
                    } catch (Exception e) {
                        return e.getClass().getSimpleName() + ": " + e.getMessage();
                    }
                }));
            int failed = 0;
            for (Future<String> f : results) {
                String e = f.get();
                if (e != null) {
                    failed++;
                    if (shown.add(e))
                        System.out.println("error: " + e.split("\n")[0]);
                }
            }
            System.out.println("done requests=" + n + " failed=" + failed);
            System.out.flush();
        }
        pool.shutdown();
        ds.close();
    }
}
