from nexus.runtime import main
from order_engine.demo.service import DemoTraffic

main(DemoTraffic)
