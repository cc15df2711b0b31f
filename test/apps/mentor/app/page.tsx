export default function Home() {
  return <p>mentor-assignment app (pg-poolguard-cache test)</p>;
}
