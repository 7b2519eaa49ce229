// DynamoDB Local has no option to choose its listen address and binds every
// interface; the test harness starts it through this class so that it listens
// on 127.0.0.1 only. `make emulators` compiles it next to the jar.
import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

public class DynamoDBLocalLoopback {
    public static void main(String[] args) throws Exception {
        var proxy = ServerRunner.createServerFromCommandLineArgs(args);
        // The Jetty server is private; its connector is not started yet, so
        // setting the host here is enough.
        var field = proxy.getClass().getDeclaredField("server");
        field.setAccessible(true);
        var server = (Server) field.get(proxy);
        for (Connector c : server.getConnectors()) {
            ((ServerConnector) c).setHost("127.0.0.1");
        }
        proxy.start();
        System.out.println("DynamoDB Local ready on 127.0.0.1");
        proxy.join();
    }
}
