import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeRetrieveResult,
  decodeUpdateSet,
  containerViewSpec,
} from '../../../src/protocols/vim/property-collector.js';
import {
  decodeReply,
  encodeRequest,
  returnValue,
} from '../../../src/protocols/vim/soap-envelope.js';
import { list, moRef, MoRef, num, obj, TypedLeaf } from '../../../src/protocols/vim/vim-values.js';
import { parseXml, XmlTreeBuilder } from '../../../src/protocols/vim/xml-tree.js';

const envelope = (body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>${body}</soapenv:Body></soapenv:Envelope>`;

// Property values as govmomi's simulator writes them: the type attribute under a prefix of its own.
const simVal = (type: string, inner: string, extra = '') =>
  `<val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="${type}"${extra}>${inner}</val>`;

const retrieveReply = envelope(
  `<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><token>page-2</token><objects><obj type="VirtualMachine">vm-57</obj>` +
    `<propSet><name>name</name>${simVal('xsd:string', 'web &amp; db')}</propSet>` +
    `<propSet><name>runtime.powerState</name>${simVal('VirtualMachinePowerState', 'poweredOn')}</propSet>` +
    `<propSet><name>runtime.host</name>${simVal('ManagedObjectReference', 'host-21', ' type="HostSystem"')}</propSet>` +
    `<propSet><name>config.hardware.numCPU</name>${simVal('xsd:int', '4')}</propSet>` +
    `<propSet><name>summary.storage.committed</name>${simVal('xsd:long', '10737418240')}</propSet>` +
    `<propSet><name>datastore</name>${simVal('ArrayOfManagedObjectReference', '<ManagedObjectReference type="Datastore">datastore-1</ManagedObjectReference><ManagedObjectReference type="Datastore">datastore-2</ManagedObjectReference>')}</propSet>` +
    `<propSet><name>customValue</name>${simVal('ArrayOfCustomFieldValue', '<CustomFieldValue XMLSchema-instance:type="CustomFieldStringValue" xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance"><key>101</key><value>ops</value></CustomFieldValue>')}</propSet>` +
    `<missingSet><path>config.annotation</path><fault><fault xsi:type="NoPermission"></fault></fault></missingSet>` +
    `</objects></returnval></RetrievePropertiesExResponse>`,
);

describe('SOAP requests', () => {
  test('a request names the method in urn:vim25, _this first, then the arguments in order, escaped', () => {
    const xml = encodeRequest('Login', moRef('SessionManager', 'SessionManager'), {
      userName: 'ops<&>"',
      password: "it's",
      locale: undefined,
    });
    assert.equal(
      xml,
      '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this><userName>ops&lt;&amp;&gt;&quot;</userName><password>it&apos;s</password></Login></soapenv:Body></soapenv:Envelope>',
    );
  });

  test('a container-view filter spec carries its TraversalSpec with xsi:type, and arrays repeat their element', () => {
    const xml = encodeRequest('RetrievePropertiesEx', moRef('PropertyCollector', 'pc'), {
      specSet: [
        containerViewSpec(moRef('ContainerView', 'view-1'), [
          { type: 'VirtualMachine', pathSet: ['name', 'runtime.host'] },
        ]),
      ],
      options: { maxObjects: 500 },
    });
    const body = parseXml(xml).children[0]!.children[0]!;
    const spec = obj(returnValue([body.children[1]!]))!;
    assert.deepEqual(obj(spec.propSet)!.pathSet, ['name', 'runtime.host']);
    const selectSet = obj(obj(spec.objectSet)!.selectSet)!;
    assert.equal(selectSet.$type, 'TraversalSpec');
    assert.equal(selectSet.path, 'view');
    assert.ok(xml.includes('<options><maxObjects>500</maxObjects></options>'));
    assert.ok(xml.includes('<obj type="ContainerView">view-1</obj>'));
  });

  test('a typed leaf is written with its xsi:type', () => {
    const xml = encodeRequest('SetField', moRef('CustomFieldsManager', 'CustomFieldsManager'), {
      value: new TypedLeaf('xsd:string', 'a&b'),
    });
    assert.ok(xml.includes('<value xsi:type="xsd:string">a&amp;b</value>'));
  });
});

describe('SOAP replies', () => {
  test('a RetrievePropertiesEx page: typed values, references, arrays, a missing property and the continuation token', () => {
    const page = decodeRetrieveResult(
      decodeReply(parseXml(retrieveReply), 'RetrievePropertiesEx')[0],
    );
    assert.equal(page.token, 'page-2');
    const [vm] = page.objects;
    assert.deepEqual(vm!.obj, moRef('VirtualMachine', 'vm-57'));
    assert.equal(vm!.props.get('name'), 'web & db');
    assert.equal(vm!.props.get('runtime.powerState'), 'poweredOn');
    assert.deepEqual(vm!.props.get('runtime.host'), moRef('HostSystem', 'host-21'));
    assert.equal(vm!.props.get('config.hardware.numCPU'), 4);
    assert.equal(vm!.props.get('summary.storage.committed'), 10737418240);
    assert.deepEqual(vm!.props.get('datastore'), [
      moRef('Datastore', 'datastore-1'),
      moRef('Datastore', 'datastore-2'),
    ]);
    const custom = list(vm!.props.get('customValue')).map(obj);
    assert.deepEqual(custom, [{ $type: 'CustomFieldStringValue', key: '101', value: 'ops' }]);
    assert.deepEqual(vm!.missing, [{ path: 'config.annotation', faultType: 'NoPermission' }]);
  });

  test('the same value read with the xsi prefix vCenter uses', () => {
    const reply = envelope(
      '<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="HostSystem">host-9</obj><propSet><name>summary.hardware.numCpuCores</name><val xsi:type="xsd:short">16</val></propSet></objects></returnval></RetrievePropertiesExResponse>',
    );
    const page = decodeRetrieveResult(decodeReply(parseXml(reply), 'RetrievePropertiesEx')[0]);
    assert.equal(page.objects[0]!.props.get('summary.hardware.numCpuCores'), 16);
    assert.equal(page.token, undefined);
  });

  test('a reply split at every byte boundary parses to the same tree', () => {
    const whole = JSON.stringify(parseXml(retrieveReply));
    for (let cut = 1; cut < retrieveReply.length; cut++) {
      const builder = new XmlTreeBuilder();
      builder.write(retrieveReply.slice(0, cut));
      builder.write(retrieveReply.slice(cut));
      assert.equal(JSON.stringify(builder.end()), whole, `split at ${cut}`);
    }
  });

  test('streamed: each ObjectContent is handed over as it closes, at every split, and left out of the tree', () => {
    const twoObjects = retrieveReply.replace(
      '</objects></returnval>',
      '</objects><objects><obj type="HostSystem">host-9</obj></objects></returnval>',
    );
    const expected = JSON.stringify(
      decodeRetrieveResult(decodeReply(parseXml(twoObjects), 'RetrievePropertiesEx')[0]).objects,
      (_k, v: unknown) => (v instanceof Map ? [...v] : v),
    );
    for (let cut = 1; cut < twoObjects.length; cut += 7) {
      const streamed: unknown[] = [];
      const builder = new XmlTreeBuilder({
        emit: {
          depth: 4,
          name: 'objects',
          onElement: (element) =>
            streamed.push(
              ...decodeRetrieveResult({ ...element, name: 'returnval', children: [element] })
                .objects,
            ),
        },
      });
      builder.write(twoObjects.slice(0, cut));
      builder.write(twoObjects.slice(cut));
      const rest = decodeRetrieveResult(decodeReply(builder.end(), 'RetrievePropertiesEx')[0]);
      assert.equal(rest.objects.length, 0, 'nothing left in the tree');
      assert.equal(rest.token, 'page-2');
      assert.equal(
        JSON.stringify(streamed, (_k, v: unknown) => (v instanceof Map ? [...v] : v)),
        expected,
        `split at ${cut}`,
      );
    }
  });

  test('a streamed element the receiver refuses fails the parse with VIM_PROTOCOL_ERROR', () => {
    const builder = new XmlTreeBuilder({
      emit: {
        depth: 4,
        name: 'objects',
        onElement: () => {
          throw new Error('no');
        },
      },
    });
    builder.write(retrieveReply);
    assert.throws(() => builder.end(), { code: 'VIM_PROTOCOL_ERROR' });
  });

  test('an update set: enter, modify with assign and remove, leave, and the next version', () => {
    const reply = envelope(
      '<WaitForUpdatesExResponse xmlns="urn:vim25"><returnval><version>7</version><filterSet><filter type="PropertyFilter">f-1</filter>' +
        '<objectSet><kind>modify</kind><obj type="VirtualMachine">vm-57</obj><changeSet><name>runtime.powerState</name><op>assign</op>' +
        simVal('VirtualMachinePowerState', 'poweredOff') +
        '</changeSet><changeSet><name>config.annotation</name><op>remove</op></changeSet></objectSet>' +
        '<objectSet><kind>enter</kind><obj type="VirtualMachine">vm-99</obj><changeSet><name>name</name><op>assign</op>' +
        simVal('xsd:string', 'clone-1') +
        '</changeSet></objectSet><objectSet><kind>leave</kind><obj type="VirtualMachine">vm-60</obj></objectSet>' +
        '</filterSet></returnval></WaitForUpdatesExResponse>',
    );
    const set = decodeUpdateSet(decodeReply(parseXml(reply), 'WaitForUpdatesEx')[0]!);
    assert.equal(set.version, '7');
    assert.equal(set.truncated, false);
    assert.deepEqual(
      set.objectUpdates.map((u) => [
        u.kind,
        u.obj.value,
        u.changes.map((c) => [c.name, c.op, c.val]),
      ]),
      [
        [
          'modify',
          'vm-57',
          [
            ['runtime.powerState', 'assign', 'poweredOff'],
            ['config.annotation', 'remove', undefined],
          ],
        ],
        ['enter', 'vm-99', [['name', 'assign', 'clone-1']]],
        ['leave', 'vm-60', []],
      ],
    );
  });

  test('several returnval elements are one array; a void reply is undefined', () => {
    const several = envelope(
      '<FindAllByUuidResponse xmlns="urn:vim25"><returnval type="VirtualMachine">vm-1</returnval><returnval type="VirtualMachine">vm-2</returnval></FindAllByUuidResponse>',
    );
    assert.deepEqual(returnValue(decodeReply(parseXml(several), 'FindAllByUuid')), [
      moRef('VirtualMachine', 'vm-1'),
      moRef('VirtualMachine', 'vm-2'),
    ]);
    const none = envelope('<LogoutResponse xmlns="urn:vim25"></LogoutResponse>');
    assert.equal(returnValue(decodeReply(parseXml(none), 'Logout')), undefined);
  });

  test('faults become coded errors by their type, whatever the message says', () => {
    const fault = (type: string, element = `${type}Fault`) =>
      envelope(
        `<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>words that change</faultstring><detail><${element} xmlns="urn:vim25" xsi:type="${type}"><obj type="VirtualMachine">vm-1</obj></${element}></detail></soapenv:Fault>`,
      );
    const cases: Array<[string, string]> = [
      ['NotAuthenticated', 'VIM_NOT_AUTHENTICATED'],
      ['InvalidLogin', 'VIM_INVALID_LOGIN'],
      ['NoPermission', 'VIM_NO_PERMISSION'],
      ['ManagedObjectNotFound', 'VIM_NOT_FOUND'],
      ['InvalidPowerState', 'VIM_INVALID_STATE'],
      ['InvalidState', 'VIM_INVALID_STATE'],
      ['NotSupported', 'VIM_NOT_SUPPORTED'],
      ['MethodNotFound', 'VIM_NOT_SUPPORTED'],
      ['ToolsUnavailable', 'VIM_TOOLS_UNAVAILABLE'],
      ['DuplicateName', 'VIM_FAULT'],
    ];
    for (const [type, code] of cases) {
      assert.throws(
        () => decodeReply(parseXml(fault(type)), 'PowerOnVM_Task'),
        (error: any) =>
          error.code === code &&
          error.details.faultType === type &&
          error.details.message === 'words that change',
        type,
      );
    }
    // Without xsi:type, the element name says the type.
    assert.throws(
      () =>
        decodeReply(
          parseXml(fault('NotAuthenticated').replace(' xsi:type="NotAuthenticated"', '')),
          'X',
        ),
      { code: 'VIM_NOT_AUTHENTICATED' },
    );
  });

  test('not SOAP, another method, an empty body, garbage and truncation are VIM_PROTOCOL_ERROR', () => {
    const bad = [
      '<html><body>proxy error</body></html>',
      envelope('<LoginResponse xmlns="urn:vim25"/>'),
      envelope(''),
      'garbage \u0000\u0001',
      retrieveReply.slice(0, retrieveReply.length / 2),
      '',
    ];
    for (const text of bad)
      assert.throws(
        () => decodeReply(parseXml(text), 'RetrievePropertiesEx'),
        { code: 'VIM_PROTOCOL_ERROR' },
        text.slice(0, 40),
      );
  });

  test('values: one or many, numbers from text, a reference knows its type', () => {
    assert.deepEqual(list(undefined), []);
    assert.deepEqual(list('a'), ['a']);
    assert.equal(num('42'), 42);
    assert.equal(num('x'), undefined);
    assert.ok(moRef('HostSystem', 'host-1').equals(new MoRef('HostSystem', 'host-1')));
    assert.equal(String(moRef('HostSystem', 'host-1')), 'HostSystem:host-1');
  });
});
