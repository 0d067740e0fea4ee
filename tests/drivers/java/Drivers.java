// pgjdbc through pgsplit in transaction pooling with read/write splitting, with prepareThreshold
// given as the first argument (1: server-side prepare at first use; 5: the driver's default).
// Each scenario prints PASS or FAIL; the last line counts them. Environment: PGSPLIT_PORT.

import java.io.StringReader;
import java.io.StringWriter;
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;
import java.util.concurrent.*;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;

public class Drivers {
    static String url;
    static int passed = 0, failed = 0;

    interface Body { void run() throws Exception; }

    static void scenario(String name, Body body) {
        try {
            body.run();
            passed++;
            System.out.println("PASS " + name);
        } catch (Throwable e) {
            failed++;
            System.out.println("FAIL " + name + ": " + e);
            e.printStackTrace(System.out);
        }
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    static Connection connect() throws SQLException {
        return DriverManager.getConnection(url, "app", "app");
    }

    public static void main(String[] args) throws Exception {
        String threshold = args.length > 0 ? args[0] : "5";
        url = "jdbc:postgresql://127.0.0.1:" + System.getenv("PGSPLIT_PORT") + "/app?prepareThreshold=" + threshold;
        String tag = "java" + ProcessHandle.current().pid() + "_" + threshold;

        scenario("types", () -> {
            try (Connection c = connect(); PreparedStatement ps = c.prepareStatement(
                    "select ?::int2, ?::int8, ?::numeric, ?::text, ?::bytea, ?::bool, ?::float8, ?::date, "
                    + "?::timestamptz, ?::uuid, ?::jsonb, ?::int4[], ?::int4")) {
                for (int round = 0; round < 6; round++) {
                    ps.setShort(1, (short) 7);
                    ps.setLong(2, 1L << 40);
                    ps.setBigDecimal(3, new BigDecimal("12.345"));
                    ps.setString(4, "héllo");
                    ps.setBytes(5, new byte[] {0, 1, (byte) 255});
                    ps.setBoolean(6, true);
                    ps.setDouble(7, 1.5);
                    ps.setDate(8, java.sql.Date.valueOf("2024-02-29"));
                    ps.setTimestamp(9, Timestamp.valueOf("2024-01-02 03:04:05"));
                    ps.setObject(10, UUID.fromString("00000000-0000-0000-0000-00000000002a"));
                    ps.setObject(11, "{\"a\": [1, null]}", Types.OTHER);
                    ps.setArray(12, c.createArrayOf("int4", new Integer[] {1, 2, 3}));
                    ps.setNull(13, Types.INTEGER);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next(), "a row");
                        check(rs.getShort(1) == 7 && rs.getLong(2) == 1L << 40, "ints");
                        check(rs.getBigDecimal(3).compareTo(new BigDecimal("12.345")) == 0, "numeric");
                        check(rs.getString(4).equals("héllo") && Arrays.equals(rs.getBytes(5), new byte[] {0, 1, (byte) 255}), "text/bytea");
                        check(rs.getBoolean(6) && rs.getDouble(7) == 1.5, "bool/float");
                        check(rs.getDate(8).toString().equals("2024-02-29"), "date");
                        check(rs.getObject(10).toString().endsWith("2a") && rs.getString(11).contains("\"a\""), "uuid/jsonb");
                        check(Arrays.equals((Integer[]) rs.getArray(12).getArray(), new Integer[] {1, 2, 3}), "array");
                        rs.getInt(13);
                        check(rs.wasNull(), "null");
                    }
                }
            }
        });

        scenario("prepared_statements_across_transactions", () -> {
            ExecutorService pool = Executors.newFixedThreadPool(20);
            List<Future<?>> jobs = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                final int id = i;
                jobs.add(pool.submit(() -> {
                    try (Connection c = connect();
                         PreparedStatement a = c.prepareStatement("select ?::int8 * 2");
                         PreparedStatement b = c.prepareStatement("select ?::text || ?::text")) {
                        c.setAutoCommit(false);
                        for (int n = 0; n < 100; n++) {
                            a.setLong(1, n);
                            try (ResultSet rs = a.executeQuery()) { rs.next(); check(rs.getLong(1) == 2L * n, "double"); }
                            b.setString(1, "c");
                            b.setString(2, String.valueOf(id));
                            try (ResultSet rs = b.executeQuery()) { rs.next(); check(rs.getString(1).equals("c" + id), "concat"); }
                            c.commit();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : jobs) f.get(120, TimeUnit.SECONDS);
            pool.shutdown();
        });

        scenario("error_then_rollback_and_reuse", () -> {
            try (Connection c = connect()) {
                c.setAutoCommit(false);
                try (Statement s = c.createStatement()) {
                    try {
                        s.execute("select * from no_such_table_anywhere");
                        throw new AssertionError("no error");
                    } catch (SQLException e) {
                        check("42P01".equals(e.getSQLState()), "42P01, got " + e.getSQLState());
                    }
                    c.rollback();
                    try (ResultSet rs = s.executeQuery("select 42")) { rs.next(); check(rs.getInt(1) == 42, "reuse"); }
                }
            }
        });

        scenario("copy_in_and_out", () -> {
            try (Connection c = connect(); Statement s = c.createStatement()) {
                String table = tag + "_copy";
                s.execute("create table " + table + " (id int, name text)");
                try {
                    StringBuilder data = new StringBuilder();
                    for (int i = 0; i < 1000; i++) data.append(i).append('\t').append("n").append(i).append('\n');
                    CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
                    check(copy.copyIn("copy " + table + " from stdin", new StringReader(data.toString())) == 1000, "copied in");
                    StringWriter out = new StringWriter();
                    copy.copyOut("copy (select * from " + table + " order by id) to stdout", out);
                    check(out.toString().equals(data.toString()), "copied out");
                } finally {
                    s.execute("drop table " + table);
                }
            }
        });

        scenario("cancel", () -> {
            try (Connection c = connect(); Statement s = c.createStatement()) {
                // A cancel every 0.5 s until the sleep ends: on a busy machine one sent before the
                // statement reached the server would meet nothing.
                ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor();
                timer.scheduleAtFixedRate(() -> { try { s.cancel(); } catch (SQLException e) { } }, 500, 500, TimeUnit.MILLISECONDS);
                try {
                    s.execute("select pg_sleep(10)");
                    throw new AssertionError("not cancelled");
                } catch (SQLException e) {
                    check("57014".equals(e.getSQLState()), "57014, got " + e.getSQLState());
                } finally {
                    timer.shutdownNow();
                    timer.awaitTermination(10, TimeUnit.SECONDS);
                }
                try (ResultSet rs = s.executeQuery("select 1")) { rs.next(); check(rs.getInt(1) == 1, "reuse"); }
            }
        });

        scenario("listen_notify", () -> {
            String channel = tag + "_chan";
            try (Connection listener = connect(); Connection sender = connect()) {
                try (Statement s = listener.createStatement()) { s.execute("listen " + channel); }
                try (Statement s = sender.createStatement()) { s.execute("notify " + channel + ", 'hello'"); }
                PGNotification[] got = listener.unwrap(PGConnection.class).getNotifications(5000);
                check(got != null && got.length == 1 && got[0].getParameter().equals("hello"), "notification");
            }
        });

        scenario("two_hundred_concurrent_connections", () -> {
            List<Connection> all = new ArrayList<>();
            try {
                for (int i = 0; i < 200; i++) all.add(connect());
                for (Connection c : all) {
                    try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select 1")) {
                        rs.next();
                        check(rs.getInt(1) == 1, "answer");
                    }
                }
            } finally {
                for (Connection c : all) c.close();
            }
        });

        System.out.println("pgjdbc prepareThreshold=" + threshold + ": " + passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }
}
